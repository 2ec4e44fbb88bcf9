"""Input pipeline throughput beside the default model's training rate, as JSON.

    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python benchmarks/data_pipeline.py [--data-dir DIR]

Measures, in one run:

- pipeline images/s of `make_dataset` for the synthetic dataset (default
  config, built on first use) and for the real JPEGs of
  `../shared/data/caltech101_loc` (`csv:` spec), with and without
  augmentation. `cache=False`, so every image is read, decoded, resized (and
  augmented) each time: the cost of a first epoch, the slowest one;
- the same augmentation through Keras's box-aware preprocessing layers
  (`RandomFlip`, `RandomZoom`, `RandomTranslation` with `bounding_boxes`), the
  alternative `pipeline.augment` was chosen over;
- training steps/s and images/s of `locnet_tf.model.build_model()` (the model
  the default command trains) on in-memory batches, so the data cannot slow it;

and the ratio pipeline / training for each pipeline figure. The pipeline must
be at least 5x the training rate (`"ok"`).
"""

import argparse
import json
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from locnet_tf.data import pipeline  # noqa: E402

CALTECH = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "caltech101_loc"


def images_per_second(dataset, batches, warmup=3):
    """Iterates `dataset` (batches) and returns images per second after a warm-up.

    `batches` should be well above the prefetch buffer, which fills during
    the warm-up and would otherwise be timed as free.
    """
    iterator = iter(dataset)
    for _ in range(warmup):
        next(iterator)
    count, start = 0, time.perf_counter()
    for _ in range(batches):
        images = next(iterator)[0]
        count += int(images.shape[0])
    return count / (time.perf_counter() - start)


def pipeline_rates(spec, args, **kwargs):
    rates = {}
    for augment in (False, True):
        dataset = pipeline.make_dataset(
            spec,
            "train",
            image_size=args.image_size,
            batch_size=args.batch_size,
            augment=augment,
            cache=False,
            data_dir=args.data_dir,
            **kwargs,
        ).repeat()
        key = "augmented" if augment else "plain"
        rates[key] = round(images_per_second(dataset, args.batches), 1)
    return rates


def keras_layers_rate(args):
    """The same kind of augmentation with Keras's box-aware layers, batched."""
    layers = [
        keras.layers.RandomFlip("horizontal", bounding_box_format="rel_yxyx"),
        keras.layers.RandomZoom((-0.2, 0.2), bounding_box_format="rel_yxyx", fill_mode="constant"),
        keras.layers.RandomTranslation(0.1, 0.1, bounding_box_format="rel_yxyx", fill_mode="constant"),
    ]
    dataset, _ = pipeline.examples("synthetic", "train", data_dir=args.data_dir)

    def to_keras(ex):
        cx, cy, h, w = tf.unstack(ex["box"], 4)
        return {
            "images": tf.cast(ex["image"], tf.float32),
            "bounding_boxes": {
                "boxes": tf.stack([[cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2]]),
                "labels": tf.reshape(ex["class_id"], [1]),
            },
        }

    def apply(batch):
        for layer in layers:
            batch = layer(batch)
        return batch["images"], batch["bounding_boxes"]["boxes"]

    dataset = (
        dataset.map(to_keras, num_parallel_calls=pipeline.AUTOTUNE)
        .batch(args.batch_size)
        .map(apply, num_parallel_calls=pipeline.AUTOTUNE)
        .prefetch(pipeline.AUTOTUNE)
        .repeat()
    )
    return round(images_per_second(dataset, args.batches), 1)


def training_rate(args):
    """Default model, default compile; steps/s on fixed in-memory batches."""
    try:
        from locnet_tf.model import network as model_lib
    except ImportError as error:  # FALLBACK: the model module is not there yet.
        return {"skipped": f"locnet_tf.model unavailable: {error}"}
    model = model_lib.build_model(image_size=args.image_size)
    model_lib.compile_model(model)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (args.batch_size, args.image_size, args.image_size, 3)).astype("float32")
    y = np.zeros((args.batch_size, model.output_shape[-1]), "float32")
    y[:, 0] = 1
    y[:, 1:5] = 0.5, 0.5, 0.3, 0.3
    y[:, 5] = 1
    # `fit` as training runs it, on one cached batch repeated: no input cost.
    data = tf.data.Dataset.from_tensors((x, y)).repeat()
    model.fit(data, steps_per_epoch=3, epochs=1, verbose=0, shuffle=False)  # trace and compile
    start = time.perf_counter()
    model.fit(data, steps_per_epoch=args.train_steps, epochs=1, verbose=0, shuffle=False)
    seconds = time.perf_counter() - start
    steps = args.train_steps / seconds
    return {
        "backbone": "default (build_model())",
        "batch_size": args.batch_size,
        "steps_per_s": round(steps, 2),
        "images_per_s": round(steps * args.batch_size, 1),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=None, help="TFDS data folder (default: TFDS's)")
    parser.add_argument("--caltech", default=str(CALTECH))
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=80, help="timed batches per pipeline figure")
    parser.add_argument("--train-steps", type=int, default=20)
    args = parser.parse_args(argv)

    report = {"cpu_count": os.cpu_count(), "image_size": args.image_size, "batch_size": args.batch_size}
    start = time.perf_counter()
    pipeline.examples("synthetic", "train", data_dir=args.data_dir)  # build on first use
    report["synthetic_build_or_load_s"] = round(time.perf_counter() - start, 1)
    pipelines = {"synthetic": pipeline_rates("synthetic", args)}
    if (pathlib.Path(args.caltech) / "annotations").is_dir():
        pipelines["caltech101_jpeg"] = pipeline_rates(f"csv:{args.caltech}", args, skip_bad=True)
    else:
        pipelines["caltech101_jpeg"] = {"skipped": f"{args.caltech} not found"}
    report["pipeline_images_per_s"] = pipelines
    try:
        report["keras_layers_augment_images_per_s"] = keras_layers_rate(args)
    except Exception as error:  # report, do not hide: this is a comparison only
        report["keras_layers_augment_images_per_s"] = {"failed": f"{type(error).__name__}: {error}"[:300]}
    train = training_rate(args)
    report["training"] = train
    if "images_per_s" in train:
        ratios = {
            f"{source}_{kind}": round(rate / train["images_per_s"], 1)
            for source, rates in pipelines.items()
            for kind, rate in rates.items()
            if isinstance(rate, float)
        }
        report["pipeline_to_training_ratio"] = ratios
        report["min_ratio"] = min(ratios.values())
        report["ok"] = report["min_ratio"] >= 5.0
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
