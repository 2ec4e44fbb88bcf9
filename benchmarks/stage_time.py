"""Where a training step's time goes: the simple backbone stage by stage.

    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python benchmarks/stage_time.py [--preset photos]

Times a training step (forward, backward, Adam update; XLA) of the model cut
after each stage (stem, stages 1-3, fuse, head, whole model), on random
in-memory images, and prints JSON: per stage its forward MFLOPs per image, the
milliseconds per image it adds, and the GFLOP/s it achieves as a fraction of
this machine's float32 matmul peak measured in the same run. A stage far below
the others' fraction is where the time is wasted. Each cut model is trained on
a stand-in loss, mean(output^2), whose cost depends on the size of the cut's
output, and XLA fuses each cut differently: the figures are estimates, good
for telling a stage at 10% of peak from one at 80%, and the last rows (a
16x16 head output against a short vector) can even come out negative.
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from locnet_tf.core import config as config_lib  # noqa: E402
from locnet_tf.model import network as model_lib  # noqa: E402
from train_speed import forward_flops, fraction_of_peak, matmul_peak  # noqa: E402


def stage_ends(model):
    """(stage, layer name) for the last layer of each stage of a simple-backbone model."""
    names = [layer.name for layer in model.layers]
    ends = [("stem", "simple_stem_relu")]
    for i in (1, 2, 3):
        last = [n for n in names if n.startswith(f"simple_s{i}") and not n.endswith("_up")][-1]
        ends.append((f"stage{i}", last))
    ends += [("fuse", "simple_fuse_relu"), ("head", "head_relu"), ("outputs", model.layers[-1].name)]
    return ends


def step_ms_per_image(model, images, repeats=6):
    """Best-of-`repeats` ms per image of an XLA training step minimising mean(output^2)."""
    optimizer = keras.optimizers.Adam(1e-4)
    optimizer.build(model.trainable_variables)

    @tf.function(jit_compile=True)
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(images, training=True)))
        optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        return loss

    for _ in range(3):  # trace and compile
        step().numpy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(4):
            step()
        step().numpy()
        best = min(best, (time.perf_counter() - start) / 5)
    return best / int(images.shape[0]) * 1000


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)
    config = config_lib.preset(args.preset)
    if config.backbone != "simple":
        parser.error("stage_time measures the simple backbone only")

    peak = matmul_peak()
    model = model_lib.build_model(**config.model_kwargs())
    rng = np.random.default_rng(0)
    images = tf.constant(
        rng.uniform(0, 255, (args.batch_size, config.image_size, config.image_size, 3)).astype(np.float32)
    )
    stages, previous_ms, previous_flops = [], 0.0, 0
    for stage, layer in stage_ends(model):
        cut = keras.Model(model.input, model.get_layer(layer).output)
        flops = forward_flops(cut)
        ms = step_ms_per_image(cut, images)
        added_ms, added_flops = ms - previous_ms, flops - previous_flops
        stages.append(
            {
                "stage": stage,
                "ends_at": layer,
                "forward_mflops": round(added_flops / 1e6, 2),
                "ms_per_image": round(added_ms, 3),
                "cumulative_ms_per_image": round(ms, 3),
                "fraction_of_peak": round(fraction_of_peak(added_flops, 1000 / added_ms, peak), 3)
                if added_ms > 0
                else None,
            }
        )
        previous_ms, previous_flops = ms, flops
    print(
        json.dumps(
            {
                "preset": args.preset,
                "image_size": config.image_size,
                "depths": list(config.depths),
                "batch_size": args.batch_size,
                "matmul_peak_gflops": round(peak, 1),
                "images_per_s": round(1000 / previous_ms, 1),
                "stages": stages,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
