"""Export, step two: do the exported files answer as the Keras model does?

Every exported format runs on the same images (by default the test split of the
model's own data, `data_settings`) beside the Keras model; `compare` gives the
figures of one format, `check_gates` the `Gates` it misses. `run_formats`
loads and runs each exported file.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from locnet_tf.evaluate import predictor as inference
from locnet_tf.model import metrics as metrics_lib
from locnet_tf.model.target import outputs_to_vector
from locnet_tf.core import runs
from locnet_tf.core.command_configs import ExportConfig
from locnet_tf.core import geometry
from locnet_tf.export.convert import ExportError

FLOAT_OUTPUTS = ("p_c", "box", "box_xyxy", "class_scores")


@dataclasses.dataclass(frozen=True)
class Gates:
    """Parity gates: an export missing one of them fails.

    float32_max_abs_diff: float. Largest absolute difference of any float
        output allowed for float32 exports (SavedModel, float32 TFLite).
    float16_min_box_iou: float. Smallest mean IoU between float16 TFLite
        boxes and Keras boxes (over all test images).
    int8_max_loc_drop: float. Largest loss of localization accuracy (a
        fraction: 0.01 is one point) of int8 TFLite against Keras.
    """

    # The defaults are the command's (`--max-float32-diff`, ...).
    float32_max_abs_diff: float = ExportConfig.max_float32_diff
    float16_min_box_iou: float = ExportConfig.min_float16_iou
    int8_max_loc_drop: float = ExportConfig.max_int8_loc_drop


def data_settings(model_path, data=None, data_dir=None, skip_bad=None):
    """The data SPEC and reader options to check an export with.

    A training run folder holds `config.json` beside `model.keras`; its `data`,
    `data_dir`, `resize`, `class_map`, `multi_object` and `skip_bad` describe
    the model's data. Explicit `data` / `data_dir` win; without either the
    default is `"synthetic"`. The reader options stay when `data` is the run's
    own; `skip_bad` (True / False) overrides theirs.

    Returns:
        dict with `data`, `data_dir`, `resize`, `source_kwargs`, `config` (the
        path of the config.json used, or None).
    """
    settings = {"data": data, "data_dir": data_dir, "resize": "stretch", "source_kwargs": {}, "config": None}
    config_path = runs.config_path(model_path)
    if config_path is not None:
        config = runs.config_beside(model_path)
        settings["config"] = str(config_path)
        settings["resize"] = config.resize
        if data is None or data == config.data:
            settings["data"] = config.data
            settings["data_dir"] = data_dir or config.data_dir
            settings["source_kwargs"] = config.source_kwargs()
    settings["data"] = settings["data"] or "synthetic"
    if skip_bad is not None:
        settings["source_kwargs"] = {**settings["source_kwargs"], "skip_bad": bool(skip_bad)}
    return settings


def load_split(settings, split, image_size, class_names, limit=None, shuffle=False):
    """The images and targets of `split` as arrays, preprocessed as the model reads them."""
    from locnet_tf.data import pipeline

    dataset = pipeline.make_dataset(
        settings["data"],
        split,
        image_size=image_size,
        batch_size=64,
        augment=False,
        shuffle=shuffle,
        resize=settings["resize"],
        class_names=class_names,
        data_dir=settings["data_dir"],
        cache=False,
        **settings["source_kwargs"],
    )
    if limit:
        dataset = dataset.unbatch().take(limit).batch(64)
    images, targets = [], []
    for x, y in dataset:
        images.append(x.numpy())
        targets.append(y.numpy())
    if not images:
        raise ExportError(f"The {split!r} split of {settings['data']!r} has no images to check the export with.")
    return np.concatenate(images), np.concatenate(targets)


def load_or_fail(load, name):
    """`load()`, or an `ExportError` saying the exported file `name` does not load."""
    try:
        return load()
    except Exception as error:
        raise ExportError(f"{name}: the exported file does not load: {error}") from error


def keras_row(targets, keras_out, threshold):
    """The Keras model's own row of the parity report (the reference: no difference)."""
    return {
        "quantization": "float32",
        "max_abs_diff": {k: 0.0 for k in FLOAT_OUTPUTS},
        **{k: 1.0 for k in ("pc_agreement", "class_agreement", "box_iou")},
        **accuracy(targets, keras_out, threshold),
    }


def run_formats(images, targets, keras_out, threshold, saved_model_dir, tflite_files, num_threads=None):
    """Loads and runs every exported file on `images`; their parity rows by name.

    Args:
        saved_model_dir: the SavedModel folder, or None when none was exported.
        tflite_files: dict of path -> quantization.

    Raises:
        ExportError: an exported file does not load or does not run.
    """
    runners = {}
    if saved_model_dir is not None:
        loaded = load_or_fail(lambda: tf.saved_model.load(str(saved_model_dir)), "saved_model")
        runners["saved_model"] = ("float32", inference.SavedModelRunner(loaded, "serving_default"))
        runners["saved_model:serving_fixed"] = ("float32", inference.SavedModelRunner(loaded, "serving_fixed"))
    for path, quantization in tflite_files.items():
        runner = load_or_fail(lambda path=path: inference.TFLiteRunner(path, num_threads=num_threads), path.name)
        runners[f"tflite_{quantization}"] = (quantization, runner)
    rows = {}
    for name, (quantization, runner) in runners.items():
        try:
            outputs = runner(images)
        except Exception as error:
            raise ExportError(f"{name}: running the exported model failed: {error}") from error
        rows[name] = {"quantization": quantization, **compare(keras_out, outputs, targets, threshold)}
    return rows


def compare(reference, outputs, targets, threshold):
    """Parity figures of one format's outputs against the Keras outputs.

    Args:
        reference: dict of named Keras outputs (numpy).
        outputs: dict of the format's named outputs (numpy).
        targets: `(N, 5 + K)` true target vectors.
        threshold: float. Presence threshold.

    Returns:
        dict: `max_abs_diff` per float output, `pc_agreement`,
        `class_agreement`, `box_iou` (mean IoU with the Keras boxes over all
        images), and the format's own `loc_accuracy` / `pc_accuracy` /
        `class_accuracy` / `mean_iou` on the targets.
    """
    diffs = {
        name: float(np.max(np.abs(np.asarray(outputs[name], np.float64) - np.asarray(reference[name], np.float64))))
        for name in FLOAT_OUTPUTS
    }
    ious = geometry.iou(reference["box"], outputs["box"])
    return {
        "max_abs_diff": diffs,
        "pc_agreement": float(np.mean((reference["p_c"] >= threshold) == (outputs["p_c"] >= threshold))),
        "class_agreement": float(np.mean(reference["class_id"] == outputs["class_id"])),
        "box_iou": float(np.mean(ious)),
        **accuracy(targets, outputs, threshold),
    }


def accuracy(targets, outputs, threshold):
    """The report metrics (`locnet_tf.model.metrics`) of named outputs against targets."""
    y_pred = outputs_to_vector(outputs)
    result = {}
    for metric in metrics_lib.localization_metrics(threshold):
        metric.update_state(targets, y_pred)
        result[metric.name] = float(metric.result())
    return result


def check_gates(parity, gates):
    """The gate failures of a parity report, as a list of messages (empty: all pass)."""
    failures = []
    keras_loc = parity["keras"]["loc_accuracy"]
    for name, row in parity.items():
        if name == "keras":
            continue
        worst = max(row["max_abs_diff"].values())
        if row["quantization"] == "float32" and worst > gates.float32_max_abs_diff:
            output = max(row["max_abs_diff"], key=row["max_abs_diff"].get)
            failures.append(
                f"{name}: max abs difference {worst:.3g} (output {output!r}) exceeds "
                f"{gates.float32_max_abs_diff:g} for a float32 export"
            )
        if row["quantization"] == "float16" and row["box_iou"] < gates.float16_min_box_iou:
            failures.append(
                f"{name}: boxes agree with Keras at mean IoU {row['box_iou']:.4f}, below {gates.float16_min_box_iou:g}"
            )
        if row["quantization"] == "int8" and keras_loc - row["loc_accuracy"] > gates.int8_max_loc_drop:
            failures.append(
                f"{name}: localization accuracy {row['loc_accuracy']:.4f} is "
                f"{100 * (keras_loc - row['loc_accuracy']):.2f} points below Keras's {keras_loc:.4f} "
                f"(allowed: {100 * gates.int8_max_loc_drop:g})"
            )
    return failures


def format_table(parity):
    """The parity report as a plain-text table."""
    header = f"{'format':<26}{'max|diff|':>11}{'p_c agr':>9}{'cls agr':>9}{'box IoU':>9}{'loc acc':>9}"
    lines = [header, "-" * len(header)]
    for name, row in parity.items():
        diff = "-" if name == "keras" else f"{max(row['max_abs_diff'].values()):.2e}"
        lines.append(
            f"{name:<26}{diff:>11}{row['pc_agreement']:>9.4f}{row['class_agreement']:>9.4f}"
            f"{row['box_iou']:>9.4f}{row['loc_accuracy']:>9.4f}"
        )
    return "\n".join(lines)
