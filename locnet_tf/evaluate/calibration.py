"""The presence threshold chosen on validation and written into the model."""

from locnet_tf.core import tf_required as _tf_required  # noqa: F401  (first: `python -m` without TensorFlow says what to install)

import numpy as np

from locnet_tf.core import outputs
from locnet_tf.model import target as target_lib
from locnet_tf.evaluate.run import _load_keras, _run_config, _with_skip_bad, predict_split
from locnet_tf.evaluate.report import _presence_counts


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


def set_presence_threshold(model, threshold):
    """Stores `threshold` in the model (its TargetVector layer and compiled metrics)."""
    from locnet_tf.model import network as model_lib

    model_lib.target_layer(model).presence_threshold = float(threshold)
    if model.compiled:
        # Recompile so the saved metrics use the new threshold too.
        model_lib.compile_model(model, loss=model.loss, jit_compile=False)


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
