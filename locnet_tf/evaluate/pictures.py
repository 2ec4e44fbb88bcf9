"""The evaluation pictures: the examples, the confusion matrix, the PR curve and the gallery."""

from locnet_tf.core import tf_required as _tf_required  # noqa: F401  (first: `python -m` without TensorFlow says what to install)
import pathlib

import numpy as np
from locnet_tf.evaluate.report import box_iou, other_object_iou, presence_curve, report_from_arrays


def evaluation_pictures(
    images, y_true, y_pred, class_names, threshold, out_dir, gallery_size=8, report=None, others=None
):
    """Writes the evaluation PNGs into `out_dir` (drawn by `locnet_tf.core.figures`); returns {name: path}.

    `report`: these arrays' `report_from_arrays`, when the caller has it already.
    `others`: per image its other labelled objects (`Record.others`), or None.
    With them the galleries draw them, and an answer that names the class of
    one of them ranks by its IoU with that one when it is higher than with the
    target (`other_object_iou`): a box on the other of two hands is not among
    the worst predictions.
    """
    from locnet_tf.core import figures as plots

    out_dir = pathlib.Path(out_dir)
    report = report or report_from_arrays(y_true, y_pred, class_names, threshold, others=others)
    pos = np.flatnonzero(y_true[:, 0] > 0.5)
    ious = box_iou(y_true[pos, 1:5], y_pred[pos, 1:5])
    pictures = {
        "confusion_matrix": plots.confusion_matrix(
            report["confusion_matrix"]["matrix"], report["confusion_matrix"]["labels"], out_dir / "confusion_matrix.png"
        ),
        "iou_histogram": plots.iou_histogram(ious, out_dir / "iou_histogram.png"),
    }
    _, precision, recall = presence_curve(y_true[:, 0] > 0.5, y_pred[:, 0])
    p = report["presence"]
    pictures["presence_pr_curve"] = plots.presence_pr_curve(
        precision, recall, (p["precision"], p["recall"], threshold), out_dir / "presence_pr_curve.png"
    )
    # Best and worst by IoU among images with an object; misses (wrong p_c on
    # background) join the worst, ranked as IoU -1 so they are shown first.
    score = np.full(len(y_true), np.nan)
    score[pos] = ious
    other_iou = None
    if others is not None:
        other_iou = np.asarray([other_object_iou(y_pred[i], others[i], threshold) for i in range(len(y_true))])
        score[pos] = np.maximum(score[pos], other_iou[pos])
    false_alarm = (y_true[:, 0] <= 0.5) & (y_pred[:, 0] >= threshold)
    score[false_alarm] = -1.0
    ranked = np.flatnonzero(~np.isnan(score))
    ranked = ranked[np.argsort(score[ranked], kind="stable")]
    n = min(gallery_size, len(ranked))
    key = "green: truth, red: answer"
    if others is not None and any(len(o) for o in others):
        key += ", dashed: other labelled objects"
    if n:
        pictures["gallery_best"] = plots.prediction_gallery(
            images,
            y_true,
            y_pred,
            class_names,
            threshold,
            ranked[::-1][:n],
            out_dir / "gallery_best.png",
            title=f"best predictions ({key})",
            others=others,
            other_iou=other_iou,
        )
        pictures["gallery_worst"] = plots.prediction_gallery(
            images,
            y_true,
            y_pred,
            class_names,
            threshold,
            ranked[:n],
            out_dir / "gallery_worst.png",
            title=f"worst predictions ({key})",
            others=others,
            other_iou=other_iou,
        )
    return pictures
