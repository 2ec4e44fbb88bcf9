"""End to end on the built-in synthetic data: `python -m locnet_tf.demo` (what `make demo` runs).

1. train a small model on `synthetic_road` (the `demo` preset: the `photos`
   settings for 8 epochs, a few minutes on a 2-core CPU), calibrate its
   presence threshold, evaluate it;
2. export it to SavedModel and the four TFLite variants, with the parity report;
3. predict a few test images with the int8 TFLite model through LiteRT and
   draw what it found;
4. print where every output is.

Run it again and it reuses the finished run (delete `runs/demo` to train anew).
"""

from locnet_tf.core import tf_required as _tf_required  # noqa: F401  (first: `python -m` without TensorFlow says what to install)
import argparse
import pathlib
import sys
import time

import numpy as np


def save_sample_images(data, out_dir, count=6, data_dir=None):
    """Writes `count` test images of `data` as PNG files (inputs for predict)."""
    from PIL import Image

    from locnet_tf.data import pipeline

    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dataset, names = pipeline.examples(data, "test", data_dir=data_dir)
    paths = []
    for i, example in enumerate(dataset.take(count)):
        present = bool(example["present"])
        label = names[int(example["class_id"])] if present else "background"
        path = out_dir / f"test_{i:02d}_{label}.png"
        Image.fromarray(np.asarray(example["image"])).save(path)
        paths.append(str(path))
    return paths


def run(out="runs/demo", export_dir="export/demo", preset="demo", data_dir=None, verbose="auto"):
    from locnet_tf.core import config as config_lib
    from locnet_tf.evaluate import report as report_lib
    from locnet_tf.export import run as export_lib
    from locnet_tf import predict as predict_lib
    from locnet_tf.train import run as train_lib

    start = time.time()
    out = pathlib.Path(out)
    config = config_lib.preset(preset, data_dir=data_dir)
    print(f"== 1/3 train: preset {preset!r} on {config.data!r} -> {out}", flush=True)
    result = train_lib.train(config, out=str(out), verbose=verbose)
    report = result["report"]

    print(f"\n== 2/3 export: SavedModel + TFLite (float32, float16, dynamic, int8) -> {export_dir}", flush=True)
    metadata = export_lib.export_model(out / "model.keras", export_dir, data_dir=data_dir)
    int8 = pathlib.Path(metadata["path"]) / "model_int8.tflite"
    model_for_predict = int8 if int8.exists() else out / "model.keras"

    print(f"\n== 3/3 predict: {model_for_predict.name} through LiteRT on test images", flush=True)
    images = save_sample_images(config.data, out / "samples", data_dir=data_dir)
    rows = predict_lib.predict_images(str(model_for_predict), images, out=out / "predictions")
    for row in rows:
        said = f"{row['class_name']} {row['score']:.2f}" if row["present"] else f"nothing (p_c {row['p_c']:.2f})"
        print(f"  {pathlib.Path(row['image']).name:<28} -> {said}")

    print(
        f"\nDone in {time.time() - start:.0f} s. Test split: "
        + "  ".join(f"{k} {report[k]:.3f}" for k in report_lib.REPORT_KEYS)
        if report
        else ""
    )
    print("Outputs:")
    for label, path in [
        ("config", out / "config.json"),
        ("model (best, calibrated)", out / "model.keras"),
        ("training history / curves", f"{out / 'history.csv'}, {out / 'curves.png'}"),
        ("TensorBoard logs", out / "logs"),
        ("test report / pictures", f"{out / 'report.json'}, {out / 'eval'}/"),
        ("exports + parity report", f"{metadata['path']}/ (metadata.json, README.md)"),
        ("predicted pictures", out / "predictions"),
    ]:
        print(f"  {label:<26} {path}")
    return {"report": report, "export": metadata, "predictions": rows}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m locnet_tf.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/demo")
    parser.add_argument("--export-dir", default="export/demo")
    parser.add_argument("--preset", default="demo", help="training preset (demo, smoke, photos, default)")
    parser.add_argument("--data-dir", default=None, help="TFDS data folder (default: TFDS's)")
    args = parser.parse_args(argv)
    run(args.out, args.export_dir, args.preset, args.data_dir)
    return 0


if __name__ == "__main__":
    from locnet_tf.core import cli

    sys.exit(cli.run(main))
