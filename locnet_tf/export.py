"""Export a trained model to SavedModel and TFLite, and prove the exports agree with it.

    python -m locnet_tf.export runs/latest/model.keras --out export/latest
    python -m locnet_tf.export model.keras --formats tflite --quantize float32,int8 --data synthetic/tiny

What lands in the export folder (`export/NAME` by default)::

    saved_model/            serving_default: uint8 images, any size, batch -> named outputs
                            serving_fixed:   float32 images at the model size (0..255)
    model_float32.tflite    built-in ops only, one signature "serving_default", batch 1,
    model_float16.tflite    float32 input 0..255 (int8: uint8 input), named outputs;
    model_dynamic.tflite    each carries its own metadata inside (classes, threshold,
    model_int8.tflite       input, resize, box format, source hash: `tflite_metadata`)
                            int8: full-integer, calibrated on training images
    metadata.json           classes, input, box format, threshold, source hash, parity,
                            every file's sha256
    parity.json             the parity report alone
    labels.txt  README.md   one class per line; a generated model card

Every output is named: `p_c`, `box` (`[b_x, b_y, b_h, b_w]` relative),
`box_xyxy` (relative corners), `class_id`, `class_scores`. Pixel scaling is
inside the model, so no export needs outside normalisation.

The parity report runs every exported format on the test split of the model's
data beside the Keras model. The export fails (`ExportError`, exit code 1)
when a gate is missed (float32 differs by more than 1e-4, float16 boxes agree
with Keras below IoU 0.98, int8 loses more than one point of localization
accuracy). Everything is written to a temporary folder beside the target and
moved into place only when complete, so a failed export leaves no half-written
folder and a previous export intact.
"""

from locnet_tf import _tf_required  # noqa: F401  (first: `python -m` without TensorFlow says what to install)
import argparse
import dataclasses
import datetime
import errno
import json
import os
import pathlib
import secrets
import shutil
import sys

try:
    import fcntl  # POSIX: locks that say an export folder is in use (see WorkFolder)
except ImportError:  # Windows
    fcntl = None

import numpy as np
import tensorflow as tf
import keras

from locnet_tf import boxes as box_lib
from locnet_tf import inference
from locnet_tf import metrics as metrics_lib
from locnet_tf import model as model_lib
from locnet_tf import outputs as outputs_lib
from locnet_tf import runs, runtime
from locnet_tf import tflite_metadata

FORMATS = ("saved_model", "tflite")
QUANTIZATIONS = ("float32", "float16", "dynamic", "int8")
FLOAT_OUTPUTS = ("p_c", "box", "box_xyxy", "class_scores")


class ExportError(RuntimeError):
    """An export that could not be completed or missed a parity gate."""


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

    float32_max_abs_diff: float = 1e-4
    float16_min_box_iou: float = 0.98
    int8_max_loc_drop: float = 0.01


sha256 = runtime.sha256  # hex SHA-256 of a file


# ----------------------------------------------------------------------------
# Where the data comes from.


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


def _load_split(settings, split, image_size, class_names, limit=None, shuffle=False):
    from locnet_tf.data import pipeline

    dataset = pipeline.make_dataset(
        settings["data"], split, image_size=image_size, batch_size=64, augment=False,
        shuffle=shuffle, resize=settings["resize"], class_names=class_names,
        data_dir=settings["data_dir"], cache=False, **settings["source_kwargs"],
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


# ----------------------------------------------------------------------------
# Building the artifacts.


def _serving_functions(model, image_size, resize):
    def fixed(images):
        return inference.vector_to_outputs(model(images, training=False))

    def any_size(images):
        shape = tf.shape(images)
        x = inference.preprocess_batch(images, image_size, resize)
        out = inference.vector_to_outputs(model(x, training=False))
        # Boxes relative to the caller's image, not the (letterboxed) model input.
        box = inference.boxes_to_original(out["box"], shape[1], shape[2], image_size, resize)
        x1, y1, x2, y2 = box_lib.target_to_corners(box)
        return out | {"box": box, "box_xyxy": tf.stack([x1, y1, x2, y2], axis=-1)}

    return fixed, any_size


def write_saved_model(model, path, resize="stretch"):
    """Writes the SavedModel with its two signatures via `keras.export.ExportArchive`.

    Args:
        model: the locnet_tf Keras model.
        path: output folder.
        resize: `"stretch"` or `"letterbox"`, used by `serving_default`.
    """
    image_size = int(model.input_shape[1])
    fixed, any_size = _serving_functions(model, image_size, resize)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serving_default", any_size,
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")],
    )
    archive.add_endpoint(
        "serving_fixed", fixed,
        input_signature=[tf.TensorSpec([None, image_size, image_size, 3], tf.float32, name="images")],
    )
    archive.write_out(str(path), verbose=False)


def write_tflite_source(model, path):
    """Writes the SavedModel that TFLite files are converted from.

    One `serving_default` signature with a static batch of one image at the
    model size: with every shape known, the converter folds the flatten's
    shape arithmetic away and XNNPACK takes the network in fewer pieces (the
    dynamic-batch `serving_fixed` signature converts to SHAPE / PACK ops that
    split the delegated graph).
    """
    image_size = int(model.input_shape[1])
    fixed, _ = _serving_functions(model, image_size, "stretch")
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serving_default", fixed,
        input_signature=[tf.TensorSpec([1, image_size, image_size, 3], tf.float32, name="images")],
    )
    archive.write_out(str(path), verbose=False)


def convert_tflite(saved_model_dir, quantization, representative=None):
    """Converts a SavedModel's `serving_default` signature to TFLite bytes.

    Args:
        saved_model_dir: a folder written by `write_tflite_source`.
        quantization: `"float32"`, `"float16"`, `"dynamic"` or `"int8"`.
        representative: for int8, a callable returning an iterator of
            `[float32 (1, S, S, 3) image]` lists (the calibration set).

    Returns:
        bytes of the `.tflite` flatbuffer. Only built-in ops are allowed: a
        model that would need Select-TF (Flex) ops fails to convert.
    """
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir), signature_keys=["serving_default"])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantization == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif quantization == "int8":
        if representative is None:
            raise ValueError("int8 quantization needs a representative dataset.")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        # Raw uint8 pixels in (scale 1, zero point 0: exact); outputs stay float32.
        converter.inference_input_type = tf.uint8
    elif quantization != "float32":
        raise ValueError(f"Unknown quantization {quantization!r}; choose from {QUANTIZATIONS}.")
    return converter.convert()


def representative_dataset(settings, image_size, class_names, samples, seed=0):
    """Calibration images from the training split, through the same preprocessing.

    Returns:
        (callable for `TFLiteConverter.representative_dataset`, count used).
    """
    from locnet_tf.data import pipeline

    dataset = pipeline.make_dataset(
        settings["data"], "train", image_size=image_size, batch_size=1, augment=False,
        shuffle=True, shuffle_buffer=max(samples, 1), seed=seed, resize=settings["resize"],
        class_names=class_names, data_dir=settings["data_dir"], cache=False, **settings["source_kwargs"],
    ).take(samples)
    images = [x.numpy() for x, _ in dataset]
    if not images:
        raise ExportError(f"No training images in {settings['data']!r} to calibrate int8 with.")

    def generate():
        for image in images:
            yield [image]

    return generate, len(images)


# ----------------------------------------------------------------------------
# Parity.


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
    ious = np.asarray(box_lib.iou(reference["box"], outputs["box"]))
    return {
        "max_abs_diff": diffs,
        "pc_agreement": float(np.mean((reference["p_c"] >= threshold) == (outputs["p_c"] >= threshold))),
        "class_agreement": float(np.mean(reference["class_id"] == outputs["class_id"])),
        "box_iou": float(np.mean(ious)),
        **accuracy(targets, outputs, threshold),
    }


def accuracy(targets, outputs, threshold):
    """The report metrics (`locnet_tf.metrics`) of named outputs against targets."""
    y_pred = inference.outputs_to_vector(outputs)
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
                f"{name}: boxes agree with Keras at mean IoU {row['box_iou']:.4f}, below "
                f"{gates.float16_min_box_iou:g}"
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


# ----------------------------------------------------------------------------
# The export.


def default_out(model_path):
    """`export/NAME`: the run folder's name for `RUN/model.keras`, else the file stem."""
    path = pathlib.Path(model_path)
    name = path.parent.name if path.stem == "model" and path.parent.name else path.stem
    return pathlib.Path("export") / name


def export_model(
    model_path,
    out=None,
    *,
    formats=FORMATS,
    quantize=QUANTIZATIONS,
    data=None,
    data_dir=None,
    skip_bad=None,
    split="test",
    calibration_samples=200,
    parity_samples=None,
    gates=Gates(),
    num_threads=None,
    verbose=True,
):
    """Exports a `.keras` model, checks every export against it, and writes the folder.

    Args:
        model_path: str or Path of a `.keras` file.
        out: output folder; default `export/NAME` (see `default_out`).
        formats: iterable of `"saved_model"`, `"tflite"`.
        quantize: iterable of TFLite quantizations (`QUANTIZATIONS`).
        data: a data SPEC for calibration and parity; default: `config.json`
            beside the model, else `"synthetic"`.
        data_dir: TFDS data folder for `synthetic` / `tfds:` specs.
        skip_bad: bool or None. Leave bad annotations and images out (reported)
            instead of failing; None: the run's setting for its own data.
        split: str. The split the parity report runs on.
        calibration_samples: int. Training images used to calibrate int8.
        parity_samples: int or None (the whole split).
        gates: `Gates`.
        num_threads: int. LiteRT threads while checking TFLite files.
        verbose: bool. Print progress and the parity table.

    Returns:
        The metadata dict (also written as `metadata.json`), with `"path"` set
        to the export folder.

    Raises:
        ExportError: a conversion failed, an exported file did not load, or a
            parity gate was missed. Nothing is left at `out` except what was
            there before.
    """
    model_path = pathlib.Path(model_path)
    if model_path.suffix != ".keras":
        raise ValueError(f"Export needs a .keras model file, got {str(model_path)!r}.")
    if not model_path.is_file():
        raise FileNotFoundError(f"{model_path}: no such model file.")
    formats = tuple(formats)
    quantize = tuple(quantize) if "tflite" in formats else ()
    unknown = (set(formats) - set(FORMATS)) | (set(quantize) - set(QUANTIZATIONS))
    if unknown:
        raise ValueError(f"Unknown formats / quantizations {sorted(unknown)}; choose from {FORMATS} and {QUANTIZATIONS}.")
    if not formats:
        raise ValueError("Nothing to export: give at least one format.")
    if calibration_samples < 1:
        raise ValueError("calibration_samples must be at least 1.")
    out = pathlib.Path(out) if out else default_out(model_path)
    log = print if verbose else (lambda *a, **k: None)

    outputs_lib.check_writable(out, "folder")  # before the model is loaded and the data read

    model = inference.load_keras(model_path)
    image_size = int(model.input_shape[1])
    class_names = model_lib.class_names(model)
    threshold = model_lib.presence_threshold(model)
    settings = data_settings(model_path, data, data_dir, skip_bad)

    out.parent.mkdir(parents=True, exist_ok=True)
    # A SavedModel and each .tflite are at most about the .keras file's size.
    needed = (1 + len(quantize) + 2) * model_path.stat().st_size + 16_000_000
    outputs_lib.check_free_space(out, needed, "the export")
    folder = WorkFolder(out, log=log)
    work = folder.path
    try:
        log(f"Exporting {model_path} ({image_size}px, classes {class_names}) to {out}")
        saved_model_dir = work / "saved_model"
        if "saved_model" in formats:
            write_saved_model(model, saved_model_dir, resize=settings["resize"])
        tflite_source = work / ".tflite_source"
        if quantize:
            write_tflite_source(model, tflite_source)

        files = {}
        calibration_used = None
        for quantization in quantize:
            log(f"  converting TFLite {quantization}")
            representative = None
            if quantization == "int8":
                representative, calibration_used = representative_dataset(
                    settings, image_size, class_names, calibration_samples
                )
            try:
                content = convert_tflite(tflite_source, quantization, representative)
            except Exception as error:  # the converter raises several types
                raise ExportError(f"TFLite {quantization} conversion failed: {_first_lines(error)}") from error
            name = f"model_{quantization}.tflite"
            # The file describes itself, so it works when copied alone.
            info = tflite_file_metadata(model, model_path, settings["resize"], quantization)
            content = _load(lambda content=content, info=info: tflite_metadata.embed(content, info), name)
            (work / name).write_bytes(content)
            files[name] = quantization

        log(f"  parity on {settings['data']!r} ({split})")
        images, targets = _load_split(settings, split, image_size, class_names, limit=parity_samples)
        keras_out = inference.KerasRunner(model)(images)
        parity = {"keras": {
            "quantization": "float32", "max_abs_diff": {k: 0.0 for k in FLOAT_OUTPUTS},
            **{k: 1.0 for k in ("pc_agreement", "class_agreement", "box_iou")},
            **accuracy(targets, keras_out, threshold),
        }}
        runners = {}
        if "saved_model" in formats:
            loaded = _load(lambda: tf.saved_model.load(str(saved_model_dir)), "saved_model")
            runners["saved_model"] = ("float32", inference.SavedModelRunner(loaded, "serving_default"))
            runners["saved_model:serving_fixed"] = ("float32", inference.SavedModelRunner(loaded, "serving_fixed"))
        for name, quantization in files.items():
            runner = _load(lambda name=name: inference.TFLiteRunner(work / name, num_threads=num_threads), name)
            runners[f"tflite_{quantization}"] = (quantization, runner)
        for name, (quantization, runner) in runners.items():
            try:
                outputs = runner(images)
            except Exception as error:
                raise ExportError(f"{name}: running the exported model failed: {error}") from error
            parity[name] = {"quantization": quantization, **compare(keras_out, outputs, targets, threshold)}
        log(format_table(parity))

        failures = check_gates(parity, gates)
        if failures:
            raise ExportError(
                f"Export failed its parity gates ({out} was left as it was):\n  - "
                + "\n  - ".join(failures)
            )

        shutil.rmtree(tflite_source, ignore_errors=True)
        metadata = _metadata(
            model_path, model, settings, split, len(images), formats, files, work,
            calibration_used, gates, parity,
        )
        _write_text_files(work, metadata)
        if "saved_model" in formats:
            # TF Serving's place for extra files; lets the SavedModel travel alone.
            (work / "saved_model" / "assets.extra").mkdir(exist_ok=True)
            shutil.copy(work / inference.METADATA, work / "saved_model" / "assets.extra" / inference.METADATA)
        folder.move_into_place()
    except (OSError, tf.errors.ResourceExhaustedError, tf.errors.PermissionDeniedError) as error:
        # A full disk, say (TensorFlow's writers raise their own errors): nothing of this export is left behind.
        folder.remove()
        if isinstance(error, OSError) and error.errno not in _WRITE_ERRORS:
            raise  # not about writing (a data file that went missing, say): as it is
        reason = error.strerror if isinstance(error, OSError) else error.message.rsplit(";", 1)[-1].strip()
        raise OSError(getattr(error, "errno", None) or errno.EIO,
                      f"cannot write the export ({reason or error}); nothing was written and any previous "
                      "export is as it was", str(out)) from error
    except BaseException:
        folder.remove()
        raise
    log(f"Export written to {out}")
    return metadata | {"path": str(out)}


def tflite_file_metadata(model, model_path, resize, quantization):
    """What a `.tflite` file carries about itself (`locnet_tf.tflite_metadata`).

    Enough to use the file alone: classes, presence threshold, input size and
    dtype, resize method, box format, and the source model's SHA-256 (which
    `metadata.json` also records, so the two can be matched).
    """
    image_size = int(model.input_shape[1])
    return {
        "model_name": model.name,
        "source_sha256": sha256(model_path),
        "classes": model_lib.class_names(model),
        "presence_threshold": model_lib.presence_threshold(model),
        "input": {"name": "images", "size": image_size, "shape": [1, image_size, image_size, 3],
                  "dtype": "uint8" if quantization == "int8" else "float32", "pixel_range": [0, 255],
                  "normalisation": "inside the model"},
        "resize": resize,
        "quantization": quantization,
        "box_format": dict(BOX_FORMAT),
        "outputs": list(inference.OUTPUT_NAMES),
    }


BOX_FORMAT = {"box": "[b_x, b_y, b_h, b_w] centre, height, width; relative to the image",
              "box_xyxy": "[x1, y1, x2, y2] relative to the image"}


def _first_lines(error, count=6):
    # Converter errors carry the whole MLIR module; the cause is at the top.
    lines = [line for line in str(error).splitlines() if line.strip()]
    return "\n".join(lines[:count]) + ("\n..." if len(lines) > count else "")


def _load(load, name):
    try:
        return load()
    except Exception as error:
        raise ExportError(f"{name}: the exported file does not load: {error}") from error


def _metadata(model_path, model, settings, split, count, formats, files, work, calibration_used, gates, parity):
    image_size = int(model.input_shape[1])
    artifacts = {}
    if "saved_model" in formats:
        size = sum(p.stat().st_size for p in (work / "saved_model").rglob("*") if p.is_file())
        artifacts["saved_model"] = {
            "path": "saved_model", "bytes": size,
            "signatures": {
                "serving_default": {"input": "images", "dtype": "uint8", "shape": [None, None, None, 3],
                                    "note": f"any size, resized inside ({settings['resize']})"},
                "serving_fixed": {"input": "images", "dtype": "float32",
                                  "shape": [None, image_size, image_size, 3], "note": "0..255"},
            },
        }
    for name, quantization in files.items():
        artifacts[f"tflite_{quantization}"] = {
            "path": name, "bytes": (work / name).stat().st_size, "sha256": sha256(work / name),
            "quantization": quantization,
            "signature": "serving_default", "input": "images",
            "dtype": "uint8" if quantization == "int8" else "float32",
            "shape": [1, image_size, image_size, 3],
        }
    return {
        # 2: each .tflite carries its metadata inside and is listed here with its sha256.
        "format_version": 2,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model_name": model.name,
        "source_model": str(model_path),
        "source_sha256": sha256(model_path),
        "classes": model_lib.class_names(model),
        "presence_threshold": model_lib.presence_threshold(model),
        "input": {"size": image_size, "shape": [image_size, image_size, 3], "pixel_range": [0, 255],
                  "normalisation": "inside the model"},
        "resize": settings["resize"],
        "target_vector": ["p_c", "b_x", "b_y", "b_h", "b_w"] + [f"c_{n}" for n in model_lib.class_names(model)],
        "box_format": dict(BOX_FORMAT),
        "outputs": list(inference.OUTPUT_NAMES),
        "artifacts": artifacts,
        "calibration": {"split": "train", "samples": calibration_used} if calibration_used else None,
        "parity": {"data": settings["data"], "split": split, "images": int(count),
                   "gates": dataclasses.asdict(gates), "results": parity},
    }


def _write_text_files(work, metadata):
    (work / inference.METADATA).write_text(json.dumps(metadata, indent=2) + "\n")
    (work / "parity.json").write_text(json.dumps(metadata["parity"], indent=2) + "\n")
    (work / "labels.txt").write_text("".join(f"{name}\n" for name in metadata["classes"]))
    (work / "README.md").write_text(model_card(metadata))


def model_card(metadata):
    """A short Markdown model card generated from the metadata."""
    parity = metadata["parity"]
    size = metadata["input"]["size"]
    rows = "\n".join(
        f"| `{a['path']}` | {a['bytes'] / 1e6:.2f} MB | {a.get('quantization', 'float32')} |"
        for a in metadata["artifacts"].values()
    )
    checks = "\n".join(
        f"| {name} | {max(r['max_abs_diff'].values()):.2e} | {r['pc_agreement']:.4f} | "
        f"{r['class_agreement']:.4f} | {r['box_iou']:.4f} | {r['loc_accuracy']:.4f} |"
        for name, r in parity["results"].items()
    )
    first_tflite = next((a["path"] for a in metadata["artifacts"].values() if a["path"].endswith(".tflite")), None)
    usage = first_tflite or "saved_model"
    return f"""# {metadata['model_name']}: single-object classification with localization

Exported by `locnet_tf.export` on {metadata['created']} from `{metadata['source_model']}`
(sha256 `{metadata['source_sha256'][:16]}...`).

- **Classes** ({len(metadata['classes'])}): {', '.join(metadata['classes'])} (also in `labels.txt`).
- **Input**: RGB {size}x{size}, pixels 0..255 (normalisation is inside the model). Resize
  other sizes with `{metadata['resize']}`; the SavedModel's `serving_default` does it for you.
- **Outputs** (named): `p_c` presence probability; `box` = `[b_x, b_y, b_h, b_w]` (centre,
  then height before width, relative to the image); `box_xyxy` relative corners; `class_id`;
  `class_scores`. An object is reported when `p_c >= {metadata['presence_threshold']:g}`.

## Files

| file | size | weights |
| --- | --- | --- |
{rows}

## Parity with the Keras model

On {parity['images']} images of `{parity['data']}` ({parity['split']} split).

| format | max abs diff | p_c agreement | class agreement | box IoU vs Keras | loc accuracy |
| --- | --- | --- | --- | --- | --- |
{checks}

## Use

```python
from locnet_tf.inference import Predictor
result = Predictor("{usage}").predict("image.jpg")
print(result.present, result.class_name, result.score, result.box_pixels)
```
"""


# The errors of a write that the file system refused.
_WRITE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG, errno.EIO)


class WorkFolder:
    """The temporary folder an export is written into, beside `out`, and its lock.

    `.NAME.partial-TOKEN/` holds the export while it is being made; the file
    `.NAME.partial-TOKEN.lock` beside it stays locked (`fcntl.flock`) for as
    long as the exporting process lives, which says the folder is in use.
    Folders of the same NAME whose lock is free (their process died: killed,
    the machine rebooted) or missing are stale: they are removed when the
    next export of NAME starts, and only they (an export running in another
    process keeps its folder; other names are not looked at). The previous
    export, moved aside while the new one is moved in, waits as
    `.NAME.partial-TOKEN.previous/`; if the process dies right then, the next
    export puts it back when `out` is missing.

    Hand-written because no library offers "a temporary folder that another
    process can tell is abandoned"; `tempfile` folders are anonymous. Where
    `fcntl` is missing (Windows), stale folders are left for the user to remove.
    """

    def __init__(self, out, log=print):
        self.out = pathlib.Path(out)
        self.prefix = f".{self.out.name}.partial-"
        self._remove_stale(log)
        token = secrets.token_hex(6)
        self.path = self.out.parent / f"{self.prefix}{token}"
        self.lock_path = self.out.parent / f"{self.prefix}{token}.lock"
        self.previous = self.out.parent / f"{self.prefix}{token}.previous"
        self._lock = None
        if fcntl is not None:
            # Locked under a name the stale-folder scan ignores, then renamed:
            # no other process can see the lock file unlocked.
            locking = self.out.parent / f".{self.out.name}.locking-{token}"
            self._lock = os.open(locking, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            fcntl.flock(self._lock, fcntl.LOCK_EX)
            os.replace(locking, self.lock_path)
        self.path.mkdir()

    def move_into_place(self):
        """Replaces `out` with the finished export (the old one, if any, is removed afterwards)."""
        moved = False
        if self.out.exists():
            os.replace(self.out, self.previous)
            moved = True
        try:
            os.replace(self.path, self.out)
        except BaseException:
            if moved:
                os.replace(self.previous, self.out)
            raise
        if moved:  # the new export is in place; an old one left half-removed goes with the next export
            shutil.rmtree(self.previous, ignore_errors=True)
        self._unlock()

    def remove(self):
        """Removes the unfinished export (after a failure)."""
        shutil.rmtree(self.path, ignore_errors=True)  # it may be half-written: remove what is there
        self._unlock()

    def _unlock(self):
        if self._lock is not None:
            self.lock_path.unlink(missing_ok=True)
            os.close(self._lock)
            self._lock = None

    def _remove_stale(self, log):
        if fcntl is None or not self.out.parent.is_dir():
            return
        for lock in sorted(self.out.parent.glob(f".{self.out.name}.locking-*")):
            if _free(lock):
                lock.unlink(missing_ok=True)
        tokens = set()
        for entry in self.out.parent.glob(f"{self.prefix}*"):
            token = entry.name[len(self.prefix):]
            for ending in (".lock", ".previous"):
                token = token[: -len(ending)] if token.endswith(ending) else token
            tokens.add(token)
        for token in sorted(tokens):
            work = self.out.parent / f"{self.prefix}{token}"
            lock, previous = work.with_name(work.name + ".lock"), work.with_name(work.name + ".previous")
            if lock.exists() and not _free(lock):
                continue  # another export is writing it
            if previous.is_dir():
                if self.out.exists():
                    shutil.rmtree(previous)
                else:  # killed between moving the old export aside and the new one in
                    os.replace(previous, self.out)
                    log(f"Put {self.out} back as it was before an export that was killed.")
            if work.is_dir():
                shutil.rmtree(work)
                log(f"Removed {work}, left by an export that did not finish.")
            lock.unlink(missing_ok=True)


def _free(lock_path):
    """Whether no process holds the lock on `lock_path` (its exporter is gone)."""
    try:
        fd = os.open(lock_path, os.O_RDONLY)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


# ----------------------------------------------------------------------------
# Command line.


def _csv(text):
    return tuple(item.strip() for item in text.split(",") if item.strip())


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m locnet_tf.export",
        description="Export a .keras model to SavedModel and TFLite, with a parity report.",
    )
    parser.add_argument("model", help="the .keras file (a training run's model.keras)")
    parser.add_argument("--out", help="export folder (default: export/NAME)")
    parser.add_argument("--formats", type=_csv, default=FORMATS, help="saved_model,tflite (default: both)")
    parser.add_argument("--quantize", type=_csv, default=QUANTIZATIONS,
                        help="TFLite variants: float32,float16,dynamic,int8 (default: all)")
    parser.add_argument("--data", help="data SPEC for calibration and parity (default: config.json beside "
                                       "the model, else synthetic)")
    parser.add_argument("--data-dir", help="TFDS data folder for synthetic / tfds: specs")
    parser.add_argument("--skip-bad", action=argparse.BooleanOptionalAction, default=None,
                        help="leave bad annotations/images out (reported) instead of failing (default: the run's)")
    parser.add_argument("--split", default="test", help="split for the parity report (default: test)")
    parser.add_argument("--calibration-samples", type=int, default=200,
                        help="training images used to calibrate int8 (default: 200)")
    parser.add_argument("--parity-samples", type=int, help="limit the parity report to N images")
    parser.add_argument("--threads", type=int, help="LiteRT threads while checking TFLite files")
    parser.add_argument("--max-float32-diff", type=float, default=Gates.float32_max_abs_diff)
    parser.add_argument("--min-float16-iou", type=float, default=Gates.float16_min_box_iou)
    parser.add_argument("--max-int8-loc-drop", type=float, default=Gates.int8_max_loc_drop,
                        help="as a fraction (0.01 = one point)")
    parser.add_argument("--quiet", action="store_true")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    gates = Gates(args.max_float32_diff, args.min_float16_iou, args.max_int8_loc_drop)
    try:
        metadata = export_model(
            args.model, args.out, formats=args.formats, quantize=args.quantize, data=args.data,
            data_dir=args.data_dir, skip_bad=args.skip_bad, split=args.split, calibration_samples=args.calibration_samples,
            parity_samples=args.parity_samples, gates=gates, num_threads=args.threads, verbose=not args.quiet,
        )
    except ExportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps({"path": metadata["path"], "artifacts": sorted(metadata["artifacts"])}))
    return 0


if __name__ == "__main__":
    from locnet_tf import cli

    sys.exit(cli.run(main, skip_bad_hint=True))
