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

import numpy as np

from locnet_tf.core import outputs
from locnet_tf.core.command_configs import EvaluateConfig
from locnet_tf.evaluate.pictures import evaluation_pictures
from locnet_tf.evaluate.predictor import Predictor, load_keras, resize_disagreement
from locnet_tf.evaluate.report import report_from_arrays


# ----------------------------------------------------------------------------
# Numbers from arrays (pure numpy).


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
        return load_keras(path), path
    return model, None


def _run_config(model_path):
    """The training config saved beside a model (run folder), if any."""
    from locnet_tf.core import runs

    return runs.config_beside(model_path)


def _predictor(model):
    """The `Predictor` of `model`: a `.keras` file, a SavedModel folder, a `.tflite` file or a Keras model."""
    if isinstance(model, (str, os.PathLike)) and not os.path.exists(model):
        raise FileNotFoundError(f"{os.fspath(model)}: no such model file or folder.")
    return Predictor(model)


def predict_split(model, data, split, config=None, batch_size=64, max_images=None, data_dir=None):
    """Runs `model` (any kind, or its `Predictor`) over a split.

    Returns:
        (uint8 images, y_true, y_pred) numpy arrays.
    """
    from locnet_tf.data import pipeline

    model = model if isinstance(model, Predictor) else _predictor(model)
    kwargs = {}
    if config is not None:
        kwargs = dict(resize=config.resize, data_dir=config.data_dir, **config.source_kwargs())
    if model.resize:
        if config is not None and config.resize != model.resize:
            from locnet_tf.core import runs

            beside = runs.config_path(model.path)
            same = beside and runs.config_beside(model.path).resize == config.resize
            config_name = beside if same else "the config given"
            resize_disagreement(model.path or "the model", model.resize, config_name, config.resize)
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


def _with_skip_bad(config, skip_bad):
    """`config` (default: a default `Config`) with `skip_bad` set, unless it is None."""
    if skip_bad is None:
        return config
    import dataclasses

    from locnet_tf.core.config import Config

    return dataclasses.replace(config or Config(), skip_bad=bool(skip_bad))


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
    path = os.fspath(model) if isinstance(model, (str, os.PathLike)) else None  # as given, for the report
    model = _predictor(model)
    config = _with_skip_bad(config or _run_config(path), skip_bad)
    data = data or (config.data if config else "synthetic")
    if out:  # the run's data, now known
        _claim_outputs(out, pictures, path, _spec(data), data_dir or (config.data_dir if config else None))
    names = model.class_names
    threshold = model.presence_threshold if threshold is None else float(threshold)
    source = _file_source(data, config, data_dir, names)
    images, y_true, y_pred = predict_split(model, source or data, split, config, data_dir=data_dir)
    others = _other_objects(source or data, split, model, config, data_dir)
    report = report_from_arrays(y_true, y_pred, names, threshold, others=others)
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
                images,
                y_true,
                y_pred,
                names,
                threshold,
                pic_dir,
                gallery_size=gallery_size,
                report=report,
                others=others,
            )
        outputs.atomic_write(out, json.dumps(report, indent=2))
    return report


def _file_source(data, config, data_dir, class_names):
    """`data` as a file `Source` read with the model's classes, or None for `tfds:` and built-in data.

    Evaluation reads it once: its records give the predictions' order
    (`predict_split` keeps the split's order) and each image's other objects.
    """
    from locnet_tf.data import sources

    if isinstance(data, sources.Source):
        if not data.is_file:
            return None
        if tuple(data.data.class_names) == tuple(class_names):
            return data
        return sources.Source(data.spec, data.data_dir, class_names, **data.source_kwargs)
    source = sources.Source(
        data,
        data_dir or (config.data_dir if config else None),
        class_names,
        **(config.source_kwargs() if config else {}),
    )
    return source if source.is_file else None


def _other_objects(data, split, model, config, data_dir):
    """Per image of `split`, its other labelled objects as `(class_id, box on the model input)` pairs.

    Resized the way `predict_split` resizes the images (letterboxing moves
    boxes). From the records of a file source (`_file_source`), from a second
    read of a `tfds:` split; None for the built-in data, one object an image.
    """
    from locnet_tf.core import geometry
    from locnet_tf.data import pipeline, sources

    method = model.resize or (config.resize if config is not None else "stretch")
    size = (model.image_size, model.image_size)
    if isinstance(data, sources.Source) and data.is_file:
        others = []
        for record in data.data.records[pipeline.split_name(split)]:
            if record.others and method != "stretch":
                if record.size is None:  # the readers always know it; evaluation cannot place the boxes without
                    raise ValueError(f"{record.origin}: the image's size is unknown; cannot letterbox its objects.")
                moved = [(c, geometry.boxes_to_letterbox(b, *record.size, size, method)) for c, b in record.others]
                others.append(moved)
            else:
                others.append(list(record.others))
        return others
    if isinstance(data, sources.Source):  # a tfds: or built-in Source the command resolved
        spec, data_dir, options = data.spec, data.data_dir, data.source_kwargs
    else:
        spec = data
        data_dir = data_dir or (config.data_dir if config else None)
        options = config.source_kwargs() if config else {}
    return pipeline.tfds_other_objects(
        spec, split, image_size=size, resize=method, data_dir=data_dir, class_names=model.class_names, **options
    )


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
