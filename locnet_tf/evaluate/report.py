"""Numbers from arrays (numpy): IoU, the presence curve, the evaluation report."""

from locnet_tf.core import tf_required as _tf_required  # noqa: F401  (first: `python -m` without TensorFlow says what to install)

import numpy as np

from locnet_tf.core import geometry


REPORT_KEYS = ("pc_accuracy", "class_accuracy", "mean_iou", "loc_accuracy")


# Object-size buckets of the report, by true box area as a fraction of the
# image: COCO's small / medium / large idea, in relative terms since our
# images come in every size. (COCO's 32^2 and 96^2 pixels are 0.3% and 3% of
# a 640 x 480 image; one object per image tends to be larger, hence 1% / 10%.)
SIZE_BUCKETS = (("small", 0.0, 0.01), ("medium", 0.01, 0.1), ("large", 0.1, float("inf")))


def box_iou(a, b):
    """Element-wise IoU of target-format boxes `(N, 4)`, as a float64 numpy array."""
    return np.asarray(geometry.iou(a, b), np.float64)


def _presence_counts(is_object, p_c):
    """(thresholds descending, true positives, false positives) at every distinct `p_c`."""
    is_object = np.asarray(is_object, bool)
    p_c = np.asarray(p_c, np.float64)
    order = np.argsort(-p_c, kind="stable")
    scores, hits = p_c[order], is_object[order]
    # last index of each distinct score: thresholds between distinct values only
    last = np.r_[np.flatnonzero(np.diff(scores) != 0), len(scores) - 1]
    return scores[last], np.cumsum(hits)[last], np.cumsum(~hits)[last]


def presence_curve(is_object, p_c):
    """Precision and recall of "object present" for every threshold on `p_c`.

    Returns:
        (thresholds descending, precision, recall), each `(M,)`: predicting
        present when `p_c >= thresholds[i]` gives `precision[i]`, `recall[i]`.
    """
    thresholds, tp, fp = _presence_counts(is_object, p_c)
    precision = tp / np.maximum(tp + fp, 1)
    recall = tp / max(np.count_nonzero(is_object), 1)
    return thresholds, precision, recall


def other_object_iou(prediction, objects, threshold):
    """The best IoU of an answer's box with another labelled object of the class it names.

    Args:
        prediction: one prediction `(5 + K,)`.
        objects: the image's other labelled objects, `(class_id, box)` pairs (`Record.others`).
        threshold: presence threshold; an answer below it boxes nothing.

    Returns:
        float; 0.0 when the answer is "no object" or no other object has its class.
    """
    if prediction[0] < threshold or not len(objects):
        return 0.0
    named = int(np.argmax(prediction[5:]))
    boxes = np.asarray([b for c, b in objects if c == named], np.float64).reshape(-1, 4)
    if not len(boxes):
        return 0.0
    return float(box_iou(boxes, np.broadcast_to(prediction[1:5], boxes.shape)).max())


def found_any_object(loc, y_true, y_pred, others, threshold):
    """Per image: `loc`, or whether the answer boxes and names another labelled object of it (IoU >= 0.5).

    The rule of ImageNet's localization task: with several objects in a
    photo, the target vector holds one of them (the largest), and a model that
    boxes and names another one has still found an object. A background image
    is right only by `loc` (its p_c).

    Args:
        loc: bool `(N,)`, localization right for the target object.
        y_true, y_pred: targets and predictions `(N, 5 + K)`.
        others: per image, a sequence of `(class_id, box)`: its other labelled
            objects (`Record.others`), empty for most.
        threshold: presence threshold.
    """
    found = np.array(loc, bool)
    for i, objects in enumerate(others):
        if not found[i] and y_true[i, 0] > 0.5:
            found[i] = other_object_iou(y_pred[i], objects, threshold) >= 0.5
    return found


def report_from_arrays(y_true, y_pred, class_names, threshold=0.5, others=None):
    """The evaluation report from targets and predictions `(N, 5 + K)`.

    `others`: per image, its other labelled objects as `(class_id, box)` pairs
    (`Record.others`, `pipeline.tfds_other_objects`), or None (the built-in
    data, one object an image). With them the report adds `loc_accuracy_any_object`
    and a `several_objects` section (see `found_any_object`).
    """
    y_true = np.asarray(y_true, np.float64)
    y_pred = np.asarray(y_pred, np.float64)
    k = len(class_names)
    if y_true.shape != y_pred.shape or y_true.shape[-1] != 5 + k:
        raise ValueError(f"targets {y_true.shape} and predictions {y_pred.shape} must both be (N, {5 + k}).")
    pos = y_true[:, 0] > 0.5
    said = y_pred[:, 0] >= threshold
    pc_right = said == pos
    true_cls = y_true[:, 5:].argmax(1)
    pred_cls = y_pred[:, 5:].argmax(1)
    cls_right = true_cls == pred_cls
    iou = box_iou(y_true[:, 1:5], y_pred[:, 1:5])
    loc = np.where(pos, pc_right & cls_right & (iou >= 0.5), pc_right)

    def mean(values, mask):
        return float(values[mask].mean()) if mask.any() else 0.0

    # Confusion matrix over background + classes: row = truth, column = answer.
    labels = ["background"] + list(class_names)
    truth = np.where(pos, true_cls + 1, 0)
    answer = np.where(said, pred_cls + 1, 0)
    confusion = np.zeros((k + 1, k + 1), int)
    np.add.at(confusion, (truth, answer), 1)

    per_class = {}
    for c, name in enumerate(class_names):
        mask = pos & (true_cls == c)
        predicted_as = said & (pred_cls == c)
        per_class[name] = {
            "count": int(mask.sum()),
            "class_accuracy": mean(cls_right, mask),
            "presence_recall": mean(said, mask),
            "precision": float((predicted_as & mask).sum() / max(predicted_as.sum(), 1)),
            "mean_iou": mean(iou, mask),
            "loc_accuracy": mean(loc, mask),
        }

    # By object size. size_bias: mean of predicted / true height (width) - 1,
    # over positives; a model that cannot resolve small objects regresses
    # their size towards the mean and shows a large positive bias there.
    area = y_true[:, 3] * y_true[:, 4]
    safe_h = np.where(pos, y_true[:, 3], 1.0)
    safe_w = np.where(pos, y_true[:, 4], 1.0)
    per_size = {}
    for name, low, high in SIZE_BUCKETS:
        mask = pos & (area >= low) & (area < high)
        per_size[name] = {
            "area": [low, high if np.isfinite(high) else None],
            "count": int(mask.sum()),
            "presence_recall": mean(said, mask),
            "mean_iou": mean(iou, mask),
            "loc_accuracy": mean(loc, mask),
            "size_bias": {
                "h": mean(y_pred[:, 3] / safe_h - 1.0, mask),
                "w": mean(y_pred[:, 4] / safe_w - 1.0, mask),
            },
        }

    thresholds, precision, recall = presence_curve(pos, y_pred[:, 0])
    # average precision: area under the step precision/recall curve
    ap = float(np.sum(np.diff(np.r_[0.0, recall]) * precision)) if pos.any() else 0.0
    tp = int((said & pos).sum())
    p_prec = tp / max(int(said.sum()), 1)
    p_rec = tp / max(int(pos.sum()), 1)
    several = {}
    if others is not None:
        if len(others) != len(pos):
            raise ValueError(f"others has {len(others)} entries for {len(pos)} images.")
        found = found_any_object(loc, y_true, y_pred, others, threshold)
        multi = np.asarray([len(o) > 0 for o in others], bool) & pos
        several = {
            "loc_accuracy_any_object": float(found.mean()) if len(pos) else 0.0,
            "several_objects": {
                "images": int(multi.sum()),
                "loc_accuracy": mean(loc, multi),
                "loc_accuracy_any_object": mean(found, multi),
            },
        }
    return {
        "pc_accuracy": float(pc_right.mean()) if len(pos) else 0.0,
        "class_accuracy": mean(cls_right, pos),
        "mean_iou": mean(iou, pos),
        "loc_accuracy": float(loc.mean()) if len(pos) else 0.0,
        **several,
        "counts": {"images": int(len(pos)), "positives": int(pos.sum()), "background": int((~pos).sum())},
        "threshold": float(threshold),
        "presence": {
            "precision": float(p_prec),
            "recall": float(p_rec),
            "f1": float(2 * p_prec * p_rec / max(p_prec + p_rec, 1e-12)),
            "average_precision": ap,
        },
        "iou_at": {
            "0.5": mean(iou >= 0.5, pos),
            "0.75": mean(iou >= 0.75, pos),
            "0.9": mean(iou >= 0.9, pos),
        },
        "per_class": per_class,
        "per_size": per_size,
        "confusion_matrix": {"labels": labels, "matrix": confusion.tolist()},
    }
