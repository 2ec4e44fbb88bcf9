"""Evaluate a model: `python -m locnet_tf.evaluate MODEL --data SPEC [--split test] [--out REPORT.json]`.

The report (JSON) holds the DESIGN's keys — `pc_accuracy`, `class_accuracy`
(positives), `mean_iou` (positives), `loc_accuracy` — plus counts, per-class
figures, presence precision/recall/F1/AP and the confusion matrix including
background. Beside it, pictures: confusion matrix, IoU histogram, presence
precision/recall curve, and a gallery of the best and worst predictions.

The numbers are computed here with numpy from the model's predictions on the
whole split (the streaming Keras metrics give the same values during training;
the tests check both against each other).
"""

from locnet_tf.core import tf_required as _tf_required  # noqa: F401  (first: `python -m` without TensorFlow says what to install)
import json
import os
import pathlib
import sys

import numpy as np

from locnet_tf.core import cli
from locnet_tf.core import outputs
from locnet_tf.model import target as target_lib
from locnet_tf.core.command_configs import EvaluateConfig
from locnet_tf.core import geometry

REPORT_KEYS = ("pc_accuracy", "class_accuracy", "mean_iou", "loc_accuracy")
# Object-size buckets of the report, by true box area as a fraction of the
# image: COCO's small / medium / large idea, in relative terms since our
# images come in every size. (COCO's 32^2 and 96^2 pixels are 0.3% and 3% of
# a 640 x 480 image; one object per image tends to be larger, hence 1% / 10%.)
SIZE_BUCKETS = (("small", 0.0, 0.01), ("medium", 0.01, 0.1), ("large", 0.1, float("inf")))


# ----------------------------------------------------------------------------
# Numbers from arrays (pure numpy).


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


# Calibrating needs this many objects and this many background images in the
# split: with fewer, one image can put the threshold anywhere in (0, 1). On 363
# vehicle photos (validation: 60, ten of them background) one background photo
# scored 0.997 set the threshold to 0.998, and test presence accuracy fell from
# 0.918 (at 0.5) to 0.859.
CALIBRATION_MIN_EACH = 20


def calibration_shortfall(y_true, min_each=CALIBRATION_MIN_EACH):
    """Why `y_true` is too small to calibrate on (one line), or None when it is not."""
    is_object = np.asarray(y_true)[:, target_lib.P_C] > 0.5
    objects, background = int(is_object.sum()), int((~is_object).sum())
    if min(objects, background) >= min_each:
        return None
    return (
        f"{objects} objects and {background} background images: too few to calibrate on (at least {min_each} of each)"
    )


def calibrate_threshold(y_true, y_pred, default=0.5, min_each=CALIBRATION_MIN_EACH):
    """The `p_c` threshold that maximises presence F1 on (validation) data, steadied.

    F1 = 2 TP / (2 TP + FP + FN) rises when a lower threshold turns a miss into
    a false alarm (one more true positive, the same number of errors), so the
    plain F1 maximum drifts below 0.5 and brings in false alarms: on
    synthetic_road it chose 0.165-0.21 where 0.417-0.585 made as many
    validation errors and 4-7 fewer test errors (docs/training_experiments.md).
    So the candidates are the thresholds that make no more errors than the
    F1-best one and whose F1 is at least what that one would have with one
    error more (a split of a thousand images cannot tell those apart); the
    candidate nearest `default` wins.

    Each threshold is put half-way between a score and the next lower one, so
    it is not balanced on a single example. With fewer than `min_each`
    objects or background images (`calibration_shortfall`) there is too
    little to calibrate on and `default` is returned.
    """
    is_object = np.asarray(y_true)[:, target_lib.P_C] > 0.5
    p_c = np.asarray(y_pred)[:, target_lib.P_C]
    if is_object.all() or not is_object.any() or calibration_shortfall(y_true, min_each):
        return float(default)
    scores, tp, fp = _presence_counts(is_object, p_c)
    errors = fp + (np.count_nonzero(is_object) - tp)
    f1 = 2 * tp / (2 * tp + errors)
    top = np.argmax(f1)  # among equal maxima the highest threshold; the band below covers the rest
    with_one_more_error = 2 * tp[top] / (2 * tp[top] + errors[top] + 1)
    candidates = np.flatnonzero((f1 >= with_one_more_error - 1e-12) & (errors <= errors[top]))
    thresholds = (scores + np.r_[scores[1:], 0.0]) / 2  # half-way to the next lower score
    return float(thresholds[candidates[np.argmin(np.abs(thresholds[candidates] - default))]])


def report_from_arrays(y_true, y_pred, class_names, threshold=0.5):
    """The evaluation report from targets and predictions `(N, 5 + K)`."""
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
    return {
        "pc_accuracy": float(pc_right.mean()) if len(pos) else 0.0,
        "class_accuracy": mean(cls_right, pos),
        "mean_iou": mean(iou, pos),
        "loc_accuracy": float(loc.mean()) if len(pos) else 0.0,
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


# ----------------------------------------------------------------------------
# Models and data.


def _load_keras(model):
    if isinstance(model, (str, os.PathLike)):
        path = str(model)
        if not path.endswith(".keras"):
            raise ValueError(
                f"{path}: calibration stores the threshold in a .keras model; exports take "
                "theirs from the model they were made from."
            )
        from locnet_tf import inference

        return inference.load_keras(path), path
    return model, None


def _run_config(model_path):
    """The training config saved beside a model (run folder), if any."""
    from locnet_tf.core import runs

    return runs.config_beside(model_path)


class _AnyModel:
    """What evaluation needs from a model of any kind: `.keras`, SavedModel or `.tflite`.

    Attributes: `path`, `image_size`, `class_names`, `presence_threshold`,
    `resize` (the model's own; None for an in-memory model saved before models
    recorded it: the data config decides), and
    `__call__(images) -> (B, 5 + K)` vectors for images at the model size.
    """

    def __init__(self, model):
        from locnet_tf import inference
        from locnet_tf.model import network as model_lib

        if isinstance(model, (str, os.PathLike)):
            self.path = str(model)
            if not os.path.exists(self.path):
                raise FileNotFoundError(f"{self.path}: no such model file or folder.")
            predictor = inference.Predictor(self.path)
            self._run = lambda x: inference.outputs_to_vector(predictor.raw(x))
            self.image_size = int(predictor.image_size)
            self.class_names = list(predictor.class_names)
            self.presence_threshold = float(predictor.presence_threshold)
            self.resize = predictor.resize
        else:
            # The model's own resize; None (the data config decides) for one saved before models recorded it.
            self.path, self.resize = None, model_lib.resize_method(model)
            self._run = lambda x: np.asarray(model.predict_on_batch(x))
            self.image_size = int(model.input_shape[1])
            self.class_names = model_lib.class_names(model)
            self.presence_threshold = model_lib.presence_threshold(model)

    def __call__(self, images):
        return np.asarray(self._run(images), np.float32)


def predict_split(model, data, split, config=None, batch_size=64, max_images=None, data_dir=None):
    """Runs `model` (any kind, see `_AnyModel`) over a split.

    Returns:
        (uint8 images, y_true, y_pred) numpy arrays.
    """
    from locnet_tf.data import pipeline

    model = model if isinstance(model, _AnyModel) else _AnyModel(model)
    kwargs = {}
    if config is not None:
        kwargs = dict(resize=config.resize, data_dir=config.data_dir, **config.source_kwargs())
    if model.resize:
        if config is not None and config.resize != model.resize:
            from locnet_tf import inference
            from locnet_tf.core import runs

            beside = runs.config_path(model.path)
            same = beside and runs.config_beside(model.path).resize == config.resize
            config_name = beside if same else "the config given"
            inference.resize_disagreement(model.path or "the model", model.resize, config_name, config.resize)
        kwargs["resize"] = model.resize
    if data_dir:
        kwargs["data_dir"] = data_dir
    dataset = pipeline.make_dataset(
        data,
        split,
        image_size=model.image_size,
        batch_size=batch_size,
        augment=False,
        shuffle=False,
        cache=False,
        class_names=model.class_names,
        **kwargs,
    )
    images, targets, predictions = [], [], []
    seen = 0
    for x, y in dataset:
        predictions.append(model(x.numpy()))
        images.append(np.clip(np.asarray(x), 0, 255).astype(np.uint8))
        targets.append(np.asarray(y))
        seen += len(y)
        if max_images and seen >= max_images:
            break
    if not targets:
        raise ValueError(f"{_spec(data)} ({split}) has no images.")
    return np.concatenate(images), np.concatenate(targets), np.concatenate(predictions)


def _spec(data):
    """The SPEC string of `data` (a SPEC, or a `data.sources.Source` a command resolved once)."""
    return getattr(data, "spec", data)


def set_presence_threshold(model, threshold):
    """Stores `threshold` in the model (its TargetVector layer and compiled metrics)."""
    from locnet_tf.model import network as model_lib

    model_lib.target_layer(model).presence_threshold = float(threshold)
    if model.compiled:
        # Recompile so the saved metrics use the new threshold too.
        model_lib.compile_model(model, loss=model.loss, jit_compile=False)


def _with_skip_bad(config, skip_bad):
    """`config` (default: a default `Config`) with `skip_bad` set, unless it is None."""
    if skip_bad is None:
        return config
    import dataclasses

    from locnet_tf.core.config import Config

    return dataclasses.replace(config or Config(), skip_bad=bool(skip_bad))


def calibrate(model, data=None, split="validation", config=None, save=True, data_dir=None, skip_bad=None, notice=None):
    """Chooses the presence threshold on `split` (F1, steadied: `calibrate_threshold`), stores it in the model.

    Args:
        model: a `.keras` path or a model.
        data: SPEC, or a `data.sources.Source` already resolved (its options are its own);
            default: the run's config, else `synthetic`.
        split: str. The split to calibrate on (never the test split's job).
        config: the training `Config` (data options); default: config.json beside the model.
        save: bool. Re-save a `.keras` path with the new threshold.
        data_dir: TFDS data folder; default: the run's.
        skip_bad: bool or None. Leave bad annotations out (reported) instead of
            failing; None: the config's setting.
        notice: called with one line when the split is too small to calibrate
            on (the threshold is then 0.5).

    Returns:
        The threshold (float).
    """
    model, path = _load_keras(model)
    config = _with_skip_bad(config or _run_config(path), skip_bad)
    data = data or (config.data if config else "synthetic")
    _, y_true, y_pred = predict_split(model, data, split, config, data_dir=data_dir)
    threshold = calibrate_threshold(y_true, y_pred)
    shortfall = calibration_shortfall(y_true)
    if shortfall and notice and not np.asarray(y_true)[:, target_lib.P_C].all():  # no background: nothing to say
        notice(f"Presence threshold {threshold:g}, not calibrated: the {split} split has {shortfall}.")
    set_presence_threshold(model, threshold)
    if save and path:
        with outputs.atomic_path(path) as partial:  # a full disk keeps the model as it was
            model.save(partial)
    return threshold


def evaluate(
    model,
    data=EvaluateConfig.data,
    split=EvaluateConfig.split,
    out=EvaluateConfig.out,
    config=None,
    threshold=EvaluateConfig.threshold,
    pictures=True,
    gallery_size=8,
    data_dir=EvaluateConfig.data_dir,
    skip_bad=EvaluateConfig.skip_bad,
    calibrated=False,
):
    """Evaluates `model` on `split` of `data` and writes the report (and pictures).

    Args:
        model: a `.keras` file, a SavedModel folder, a `.tflite` file, or a Keras model.
        data: SPEC, or a `data.sources.Source` already resolved (its options are its own);
            default: the run's config (config.json beside the model), else `synthetic`.
        split: str.
        out: path of the JSON report; pictures go to an `eval/` folder beside
            it. None writes nothing.
        config: training `Config` for data options; default: config.json beside the model.
        threshold: presence threshold; default: the one stored in the model.
        pictures: bool. Draw the PNGs.
        gallery_size: int. How many best and how many worst predictions to draw.
        data_dir: TFDS data folder (`synthetic`, `tfds:` specs); default: the run's.
        skip_bad: bool or None. Leave bad annotations out (reported) instead of
            failing; None: the config's setting.
        calibrated: bool. The threshold was calibrated just before (`--calibrate`);
            recorded in the report's `evaluate_config`, nothing more.

    Returns:
        The report dict. Its `evaluate_config` holds the `EvaluateConfig` the
        numbers came from, resolved: the data, TFDS folder, `skip_bad` and
        threshold actually used.
    """
    if out:  # before the model is loaded and the data read
        _claim_outputs(out, pictures, model, _spec(data), data_dir)
    model = _AnyModel(model)
    path = model.path
    config = _with_skip_bad(config or _run_config(path), skip_bad)
    data = data or (config.data if config else "synthetic")
    if out:  # the run's data, now known
        _claim_outputs(out, pictures, model.path, _spec(data), data_dir or (config.data_dir if config else None))
    names = model.class_names
    threshold = model.presence_threshold if threshold is None else float(threshold)
    images, y_true, y_pred = predict_split(model, data, split, config, data_dir=data_dir)
    report = report_from_arrays(y_true, y_pred, names, threshold)
    report.update(model=path, data=_spec(data), split=split)
    report["evaluate_config"] = EvaluateConfig(
        data=_spec(data),
        data_dir=data_dir or (config.data_dir if config else None),
        split=split,
        skip_bad=bool(config.skip_bad) if config else False,
        threshold=threshold,
        calibrate=bool(calibrated),
        out=str(out) if out else None,
    ).to_dict()
    if out:
        out = pathlib.Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        if pictures:
            pic_dir = out.parent / "eval"
            pic_dir.mkdir(exist_ok=True)
            outputs.mark_folder(pic_dir, "evaluate")
            report["pictures"] = evaluation_pictures(
                images, y_true, y_pred, names, threshold, pic_dir, gallery_size=gallery_size, report=report
            )
        outputs.atomic_write(out, json.dumps(report, indent=2))
    return report


def _claim_outputs(out, pictures, model, data, data_dir):
    """Raises unless the report `out` and its `eval/` folder are new or evaluate's own, clear of the inputs."""
    inputs = [(model, "the model")] if isinstance(model, (str, os.PathLike)) else []
    inputs += outputs.data_inputs(data, data_dir)
    outputs.claim_file(out, "evaluate", inputs)
    if pictures:
        outputs.claim_folder(
            pathlib.Path(out).parent / "eval",
            "evaluate",
            inputs,
            "the pictures' folder",
            hint="give --out in another folder (the pictures go to eval/ beside the report)",
        )


def evaluation_pictures(images, y_true, y_pred, class_names, threshold, out_dir, gallery_size=8, report=None):
    """Writes the evaluation PNGs into `out_dir` (drawn by `locnet_tf.core.figures`); returns {name: path}.

    `report`: these arrays' `report_from_arrays`, when the caller has it already.
    """
    from locnet_tf.core import figures as plots

    out_dir = pathlib.Path(out_dir)
    report = report or report_from_arrays(y_true, y_pred, class_names, threshold)
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
    false_alarm = (y_true[:, 0] <= 0.5) & (y_pred[:, 0] >= threshold)
    score[false_alarm] = -1.0
    ranked = np.flatnonzero(~np.isnan(score))
    ranked = ranked[np.argsort(score[ranked], kind="stable")]
    n = min(gallery_size, len(ranked))
    if n:
        pictures["gallery_best"] = plots.prediction_gallery(
            images,
            y_true,
            y_pred,
            class_names,
            threshold,
            ranked[::-1][:n],
            out_dir / "gallery_best.png",
            title="best predictions (green: truth, red: answer)",
        )
        pictures["gallery_worst"] = plots.prediction_gallery(
            images,
            y_true,
            y_pred,
            class_names,
            threshold,
            ranked[:n],
            out_dir / "gallery_worst.png",
            title="worst predictions (green: truth, red: answer)",
        )
    return pictures


def format_report(report):
    """A short console table of a report."""
    c = report["counts"]
    lines = [
        f"{report.get('data', '?')} ({report.get('split', '?')}): {c['images']} images, "
        f"{c['positives']} with an object, {c['background']} background; threshold {report['threshold']:.3f}",
        "  " + "  ".join(f"{k} {report[k]:.4f}" for k in REPORT_KEYS),
        f"  {'class':<14}{'count':>7}{'cls_acc':>9}{'mean_iou':>9}{'loc_acc':>9}",
    ]
    for name, v in report["per_class"].items():
        lines.append(
            f"  {name:<14}{v['count']:>7}{v['class_accuracy']:>9.4f}{v['mean_iou']:>9.4f}{v['loc_accuracy']:>9.4f}"
        )
    lines.append(
        f"  {'object area':<14}{'count':>7}{'found':>9}{'mean_iou':>9}{'loc_acc':>9}{'h bias':>9}{'w bias':>9}"
    )
    for name, v in report["per_size"].items():
        low, high = v["area"]
        span = f">={low:.0%}" if high is None else f"<{high:.0%}" if low == 0 else f"{low:.0%}-{high:.0%}"
        if not v["count"]:  # no such objects: no figures, rather than zeros that read as failures
            lines.append(f"  {name + ' ' + span:<14}{0:>7}" + f"{'-':>9}" * 5)
            continue
        lines.append(
            f"  {name + ' ' + span:<14}{v['count']:>7}{v['presence_recall']:>9.4f}{v['mean_iou']:>9.4f}"
            f"{v['loc_accuracy']:>9.4f}{v['size_bias']['h']:>+9.3f}{v['size_bias']['w']:>+9.3f}"
        )
    return "\n".join(lines)


def build_parser():
    """The command line: the model, then one flag per `EvaluateConfig` field, grouped."""
    parser = cli.ArgumentParser(prog="python -m locnet_tf.evaluate", description="Evaluate a model.")
    parser.add_argument(
        "model", help="a .keras model (e.g. RUN_DIR/model.keras), a SavedModel folder or a .tflite file"
    )
    return EvaluateConfig.add_arguments(parser)


def main(argv=None):
    args = build_parser().parse_args(argv)
    settings = EvaluateConfig.from_args(args)
    if settings.out:  # before calibrating, which rewrites the model
        _claim_outputs(settings.out, True, args.model, settings.data, settings.data_dir)
    if settings.calibrate:
        notes = []  # a split too small to calibrate on says so instead
        threshold = calibrate(
            args.model,
            data=settings.data,
            data_dir=settings.data_dir,
            skip_bad=settings.skip_bad,
            notice=notes.append,
        )
        print(*notes or [f"calibrated presence threshold: {threshold:.3f}"])
    report = evaluate(
        args.model,
        data=settings.data,
        split=settings.split,
        out=settings.out,
        threshold=settings.threshold,
        data_dir=settings.data_dir,
        skip_bad=settings.skip_bad,
        calibrated=settings.calibrate,
    )
    print(format_report(report))
    if settings.out:
        print(f"Report: {settings.out}")
    return 0


if __name__ == "__main__":
    from locnet_tf.core import cli

    sys.exit(cli.run(main, skip_bad_hint=True))
