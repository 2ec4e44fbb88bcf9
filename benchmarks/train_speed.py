"""Training speed of the default model against this machine's own matmul peak.

    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python benchmarks/train_speed.py [--preset default] [--seconds 20]
        [--compare photos] [--progressive-size 96]

Prints JSON: the float32 matrix-multiply rate measured here (the machine's
practical peak), the default model's forward FLOPs per image (TensorFlow's
graph profiler), and its training rate for a few settings (XLA on/off, batch
sizes). A training step costs about 3x the forward FLOPs (forward, plus
gradients with respect to activations and to weights), so

    achieved GFLOP/s = 3 * forward FLOPs * images/s / 1e9

and `fraction_of_peak` divides it by the matmul rate of the same run. Every run times
the step `train` runs (with map supervision when the preset has it); the
`map_supervision` entry times the preset's step with and without those terms.
`--progressive-size N` times the preset's step at N px (the size-scaled model
progressive resizing trains first) and at its own size, back to back: the step-time
ratio that says how many small epochs fit in the time of one full-size epoch.
Inputs are random tensors already in memory, so only the model is measured (the data
pipeline has its own benchmark, benchmarks/data_pipeline.py).
"""

import argparse
import dataclasses
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from locnet_tf.core import config as config_lib  # noqa: E402
from locnet_tf.model import network as model_lib  # noqa: E402
from locnet_tf.train import run as train_lib  # noqa: E402


def matmul_peak(n=2048, seconds=5.0):
    """float32 GFLOP/s of an n x n matmul, best of repeated runs."""
    a = tf.random.normal((n, n))
    b = tf.random.normal((n, n))
    matmul = tf.function(lambda: tf.matmul(a, b))
    matmul().numpy()
    best, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        matmul().numpy()
        best = max(best, 2 * n**3 / (time.perf_counter() - start) / 1e9)
    return best


def forward_flops(model):
    """Forward FLOPs for one image, from TensorFlow's graph profiler."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    spec = tf.TensorSpec((1,) + tuple(model.input_shape[1:]), tf.float32)
    concrete = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    graph = convert_variables_to_constants_v2(concrete).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return int(tf.compat.v1.profiler.profile(graph=graph, options=options).total_float_ops)


def fraction_of_peak(forward_flops, images_per_s, peak_gflops):
    """Achieved training GFLOP/s (3 x forward FLOPs per image) as a fraction of the peak."""
    return 3 * forward_flops * images_per_s / 1e9 / peak_gflops


def training_rate(config, batch_size, jit_compile, seconds, map_supervision=True, size_scale=1.0):
    """Images/s of `train_on_batch` on in-memory random data (after warm-up).

    With `map_supervision` the step is the one `train` runs: the model wrapped
    in `losses.MapSupervision` when the config turns it on.
    """
    if not map_supervision:
        config = dataclasses.replace(config, heatmap_weight=0.0, vote_weight=0.0)
    model = model_lib.build_model(size_scale=size_scale, **config.model_kwargs())
    model = train_lib.compile_for_training(model, config, jit_compile=jit_compile)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (batch_size, config.image_size, config.image_size, 3)).astype(np.float32)
    y = np.zeros((batch_size, 8), np.float32)
    y[: batch_size // 2, 0] = 1
    y[: batch_size // 2, 1:5] = 0.5
    y[: batch_size // 2, 6] = 1
    x, y = tf.constant(x), tf.constant(y)
    for _ in range(3):  # trace / compile
        model.train_on_batch(x, y)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        model.train_on_batch(x, y)
        steps += 1
    return steps * batch_size / (time.perf_counter() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--seconds", type=float, default=15.0, help="timing per setting")
    parser.add_argument("--batch-sizes", default="32,64,128")
    parser.add_argument(
        "--compare",
        default=None,
        metavar="PRESET",
        help="also time PRESET's model (its batch size and XLA setting) and the default's, "
        "and print their rate ratio: the training-time ratio per image",
    )
    parser.add_argument(
        "--progressive-size",
        type=int,
        default=None,
        metavar="N",
        help="also time the preset's step at N px and at its own size, back to back (progressive resizing)",
    )
    args = parser.parse_args(argv)
    config = config_lib.preset(args.preset)

    peak = matmul_peak()
    model = model_lib.build_model(**config.model_kwargs())
    flops = forward_flops(model)
    runs = []
    for jit in (False, True):
        for batch in [int(b) for b in args.batch_sizes.split(",")]:
            rate = training_rate(config, batch, jit, args.seconds)
            fraction = fraction_of_peak(flops, rate, peak)
            runs.append(
                {
                    "jit_compile": jit,
                    "batch_size": batch,
                    "images_per_s": round(rate, 1),
                    "achieved_gflops": round(fraction * peak, 2),
                    "fraction_of_peak": round(fraction, 3),
                }
            )
    best = max(runs, key=lambda r: r["images_per_s"])
    # What the map-supervision terms cost: the preset's own step with and
    # without them, back to back.
    jit = train_lib._jit(config.jit_compile)
    with_terms = training_rate(config, config.batch_size, jit, args.seconds)
    without = training_rate(config, config.batch_size, jit, args.seconds, map_supervision=False)
    map_supervision = {
        "on_in_config": train_lib.map_supervised(config),
        "images_per_s_with": round(with_terms, 1),
        "images_per_s_without": round(without, 1),
        "time_per_image_ratio": round(without / with_terms, 3),
    }
    compare = None
    if args.compare:
        # Both at their own preset's settings, timed back to back in this run,
        # so the ratio holds on a busy machine where the absolute rates do not.
        other = config_lib.preset(args.compare)
        other_flops = forward_flops(model_lib.build_model(**other.model_kwargs()))
        timed = {}
        for name, cfg, cfg_flops in ((args.preset, config, flops), (args.compare, other, other_flops)):
            rate = training_rate(cfg, cfg.batch_size, train_lib._jit(cfg.jit_compile), args.seconds)
            timed[name] = {
                "forward_mflops_per_image": round(cfg_flops / 1e6, 1),
                "images_per_s": round(rate, 1),
                "fraction_of_peak": round(fraction_of_peak(cfg_flops, rate, peak), 3),
            }
        compare = {
            "preset": args.compare,
            "image_size": other.image_size,
            "depths": list(other.depths),
            "timed": timed,
            "time_per_image_ratio": round(timed[args.preset]["images_per_s"] / timed[args.compare]["images_per_s"], 3),
        }
    progressive = None
    if args.progressive_size:
        small = dataclasses.replace(config, image_size=args.progressive_size)
        scale = config.image_size / args.progressive_size
        small_rate = training_rate(small, config.batch_size, jit, args.seconds, size_scale=scale)
        full_rate = training_rate(config, config.batch_size, jit, args.seconds)
        progressive = {
            "size": args.progressive_size,
            "images_per_s_small": round(small_rate, 1),
            "images_per_s_full": round(full_rate, 1),
            "step_time_ratio_small_to_full": round(full_rate / small_rate, 3),
        }
    print(
        json.dumps(
            {
                "preset": args.preset,
                "image_size": config.image_size,
                "filters": list(config.filters),
                "params": int(model.count_params()),
                "forward_mflops_per_image": round(flops / 1e6, 1),
                "train_flops_per_image_convention": "3 x forward",
                "matmul_peak_gflops": round(peak, 1),
                "runs": runs,
                "best": best,
                "config_jit_compile": config.jit_compile,
                "config_batch_size": config.batch_size,
                "map_supervision": map_supervision,
                "compare": compare,
                "progressive": progressive,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
