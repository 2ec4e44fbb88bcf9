"""Export speed and size: Keras, SavedModel and every TFLite variant, in one run.

    # Train the default model briefly on the synthetic data, export, measure:
    python benchmarks/export_speed.py --train-steps 300
    # Or measure an already trained model (its run folder's config.json names the data):
    python benchmarks/export_speed.py --model runs/latest/model.keras

Prints one JSON document: for each format its file size, its single-image
latency (median of `--runs` calls after warm-up, with 1 and 2 threads) and its
localization accuracy on the test split (from the export's parity report), then
the int8 / float32 TFLite speed-up and the comparison of the default model's
int8 TFLite with a MobileNetV3-Small localization model of the same input size,
trained `--train-steps` steps (from scratch: no weights are downloaded, so its
accuracy is only meaningful after long training) and exported the same way.

Why int8 may not be faster here: on an x86 CPU without VNNI (AVX2 only)
XNNPACK's int8 kernels widen to 16 bits and are about as fast as its float32
FMA kernels; the 2-4x int8 gains show on ARM (dot-product instructions), the
phones and boards the int8 file is for.

Latencies are measured in a fresh subprocess per thread count, because
TensorFlow fixes its thread pools when it starts. TFLite runs through LiteRT
(`ai_edge_litert`) with XNNPACK and `num_threads`; TensorFlow with
`intra_op_parallelism_threads`. The benchmark records gate results instead of
failing on them: it reports, it does not ship.
"""

import argparse
import contextlib
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _median_ms(fn, runs, warmup=10):
    import numpy as np

    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000.0)


def measure(export_dir, model_path, threads, runs):
    """Latency (ms) of every format of one export, with `threads` threads."""
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras

    from locnet_tf.evaluate import predictor as inference
    from locnet_tf.model import network as _  # noqa: F401  registers the custom layers for load_model

    export_dir = pathlib.Path(export_dir)
    metadata = json.loads((export_dir / "metadata.json").read_text())
    size = metadata["input"]["size"]
    image = np.random.default_rng(0).integers(0, 256, (1, size, size, 3)).astype(np.float32)
    result = {}
    if model_path:
        model = keras.models.load_model(model_path)
        result["keras_predict"] = _median_ms(lambda: model.predict(image, verbose=0), runs)
        tensor = tf.constant(image)
        result["keras_call"] = _median_ms(lambda: model(tensor, training=False), runs)
    if (export_dir / "saved_model").is_dir():
        fixed = tf.saved_model.load(str(export_dir / "saved_model")).signatures["serving_fixed"]
        tensor = tf.constant(image)
        result["saved_model"] = _median_ms(lambda: fixed(images=tensor), runs)
    for name, artifact in metadata["artifacts"].items():
        if not name.startswith("tflite_"):
            continue
        runner = inference.TFLiteRunner(export_dir / artifact["path"], num_threads=threads)
        dtype = runner.input_dtype
        feed = {runner.input_name: image.astype(dtype)}
        result[name] = _median_ms(lambda runner=runner, feed=feed: runner.runner(**feed), runs)
    return result


def int8_kernel_ceiling(threads, runs, size=48, channels=64, layers=4):
    """float32 / int8 TFLite latency of a plain stack of 3x3 convolutions.

    No model can expect a larger int8 speed-up than this machine's XNNPACK
    kernels give on pure convolutions, so the benchmark measures that ceiling in
    the same run: on an AVX2 CPU without VNNI it is about 1x, on ARM with
    dot-product instructions 2-4x.
    """
    import keras
    import numpy as np
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    x = inputs = keras.Input((size, size, channels))
    for _ in range(layers):
        x = keras.layers.Conv2D(channels, 3, padding="same", activation="relu")(x)
    model = keras.Model(inputs, x)
    rng = np.random.default_rng(0)

    def convert(int8):
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        if int8:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: (
                [rng.uniform(0, 1, (1, size, size, channels)).astype(np.float32)] for _ in range(16)
            )
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        return converter.convert()

    # The converter prints "Saved artifact ..." on stdout, where this benchmark's JSON goes.
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(sys.stderr):
        result = {
            "model": f"{layers} x conv3x3 {channels}->{channels} at {size}x{size}",
            "mflops": round(2 * layers * size * size * 9 * channels * channels / 1e6, 1),
        }
        for int8 in (False, True):
            path = pathlib.Path(tmp) / f"{'int8' if int8 else 'float32'}.tflite"
            path.write_bytes(convert(int8))
            for threads_ in threads:
                interpreter = Interpreter(model_path=str(path), num_threads=threads_)  # XNNPACK by default
                interpreter.allocate_tensors()
                detail = interpreter.get_input_details()[0]
                interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
                result[f"{path.stem}_ms_{threads_}_threads"] = round(_median_ms(interpreter.invoke, runs), 4)
        result["int8_speedup"] = {
            str(t): round(result[f"float32_ms_{t}_threads"] / result[f"int8_ms_{t}_threads"], 3) for t in threads
        }
    return result


def _measure_in_subprocess(export_dir, model_path, threads, runs):
    command = [
        sys.executable,
        __file__,
        "--measure",
        str(export_dir),
        "--threads",
        str(threads),
        "--runs",
        str(runs),
    ] + (["--model", str(model_path)] if model_path else [])
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"latency subprocess failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def train_briefly(backbone, image_size, steps, spec, data_dir, path):
    """Trains `build_model(backbone=...)` for `steps` steps of 32 and saves it."""
    import keras

    from locnet_tf.model import network as model_lib
    from locnet_tf.data import pipeline

    keras.utils.set_random_seed(0)
    # depths (1, 1, 1): the model the figures in docs/benchmarks.md were measured on.
    model = model_lib.build_model(image_size=image_size, backbone=backbone, depths=(1, 1, 1))
    model_lib.compile_model(model, learning_rate=2e-3)
    if steps:
        train = (
            pipeline.make_dataset(spec, "train", image_size=image_size, batch_size=32, data_dir=data_dir, cache=False)
            .repeat()
            .take(steps)
        )
        model.fit(train, epochs=1, verbose=0, shuffle=False)
    model.save(path)
    return path


def _dir_bytes(path):
    path = pathlib.Path(path)
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _summarise(export_dir, model_path, latencies):
    metadata = json.loads((pathlib.Path(export_dir) / "metadata.json").read_text())
    parity = metadata["parity"]["results"]
    keras_bytes = _dir_bytes(model_path)
    rows = {}
    for name in latencies[next(iter(latencies))]:
        if name.startswith("keras"):
            size, accuracy = keras_bytes, parity["keras"]["loc_accuracy"]
        else:
            size, accuracy = metadata["artifacts"][name]["bytes"], parity[name]["loc_accuracy"]
        rows[name] = {
            "bytes": size,
            "latency_ms": {str(t): round(lat[name], 4) for t, lat in latencies.items()},
            "loc_accuracy": round(accuracy, 4),
        }
    return rows, metadata


def run(args):
    from locnet_tf.export import run as export
    from locnet_tf.export import parity

    work = pathlib.Path(args.work or tempfile.mkdtemp(prefix="locnet_export_speed_"))
    work.mkdir(parents=True, exist_ok=True)
    # One data source for every model: --data, else the trained model's config.json, else synthetic.
    settings = parity.data_settings(args.model, args.data, args.data_dir)
    data, data_dir = settings["data"], settings["data_dir"]
    started = time.time()
    models = {}
    if args.model:
        models["default"] = pathlib.Path(args.model)
        import keras

        image_size = int(keras.models.load_model(args.model).input_shape[1])
    else:
        image_size = args.image_size
        models["default"] = train_briefly(
            "simple", image_size, args.train_steps, data, data_dir, work / "default.keras"
        )
    if not args.skip_mobilenet:
        models["mobilenet_v3_small"] = train_briefly(
            "mobilenet_v3_small", image_size, args.train_steps, data, data_dir, work / "mobilenet_v3_small.keras"
        )
    no_gates = parity.Gates(float("inf"), float("-inf"), float("inf"))
    report = {
        "settings": {
            "image_size": image_size,
            "data": data,
            "train_steps": None if args.model else args.train_steps,
            "runs": args.runs,
            "threads": args.threads,
            "parity_samples": args.parity_samples,
            "calibration_samples": args.calibration_samples,
        },
        "models": {},
    }
    for name, model_path in models.items():
        out = work / f"export_{name}"
        kwargs = {}
        if name != "default":
            kwargs = dict(formats=["tflite"], quantize=["float32", "int8"])
        metadata = export.export_model(
            model_path,
            out,
            data=data,
            data_dir=data_dir,
            parity_samples=args.parity_samples,
            calibration_samples=args.calibration_samples,
            gates=no_gates,
            verbose=False,
            **kwargs,
        )
        latencies = {
            t: _measure_in_subprocess(out, model_path if name == "default" else None, t, args.runs)
            for t in args.threads
        }
        rows, metadata = _summarise(out, model_path, latencies)
        report["models"][name] = {
            "source": str(model_path),
            "formats": rows,
            "gate_failures": parity.check_gates(metadata["parity"]["results"], parity.Gates()),
        }
    default = report["models"]["default"]["formats"]
    if "tflite_int8" in default and "tflite_float32" in default:
        report["int8_vs_float32_tflite_speedup"] = {
            str(t): round(
                default["tflite_float32"]["latency_ms"][str(t)] / default["tflite_int8"]["latency_ms"][str(t)], 3
            )
            for t in args.threads
        }
        report["int8_loc_accuracy_drop_points"] = round(
            100 * (default["tflite_float32"]["loc_accuracy"] - default["tflite_int8"]["loc_accuracy"]), 2
        )
    if "mobilenet_v3_small" in report["models"]:
        mobile = report["models"]["mobilenet_v3_small"]["formats"]["tflite_int8"]
        report["default_int8_vs_mobilenet_v3_small_int8_speedup"] = {
            str(t): round(mobile["latency_ms"][str(t)] / default["tflite_int8"]["latency_ms"][str(t)], 3)
            for t in args.threads
        }
    speedups = report.get("int8_vs_float32_tflite_speedup", {})
    report["goals"] = {
        "int8_at_least_2x_faster_than_float32": bool(speedups) and all(v >= 2.0 for v in speedups.values()),
        "int8_loses_at_most_1_point": report.get("int8_loc_accuracy_drop_points", 99) <= 1.0,
        "default_int8_faster_than_mobilenet_v3_small_int8": all(
            v > 1.0 for v in report.get("default_int8_vs_mobilenet_v3_small_int8_speedup", {"-": 0}).values()
        ),
    }
    if not args.skip_kernel_check:
        report["int8_kernel_ceiling"] = int8_kernel_ceiling(args.threads, args.runs)
    report["seconds"] = round(time.time() - started, 1)
    report["work_dir"] = str(work)
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a trained .keras model (default: train one briefly)")
    parser.add_argument("--data", help="data SPEC (default: config.json beside --model, else synthetic)")
    parser.add_argument("--data-dir", help="TFDS data folder")
    parser.add_argument("--image-size", type=int, default=96, help="input size of the models trained here")
    parser.add_argument("--train-steps", type=int, default=300, help="training steps (batch 32) when training")
    parser.add_argument("--runs", type=int, default=200, help="timed calls per format (median reported)")
    parser.add_argument("--threads", type=lambda s: [int(v) for v in s.split(",")], default=[1, 2])
    parser.add_argument("--parity-samples", type=int, help="test images for accuracy (default: the split)")
    parser.add_argument("--calibration-samples", type=int, default=200)
    parser.add_argument("--skip-mobilenet", action="store_true", help="skip the MobileNetV3-Small comparison")
    parser.add_argument(
        "--skip-kernel-check",
        action="store_true",
        help="skip measuring int8 vs float32 on a plain conv stack (this CPU's ceiling)",
    )
    parser.add_argument("--work", help="folder for models and exports (default: a temp folder)")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # internal: latency subprocess
    args = parser.parse_args(argv)
    if args.measure:
        (threads,) = args.threads
        print(json.dumps(measure(args.measure, args.model, threads, args.runs)))
        return 0
    print(json.dumps(run(args), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
