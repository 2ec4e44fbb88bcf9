"""Training rate of the real-photo recipe's network by input size: what its compute budget costs.

    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python benchmarks/recipe_rate.py [--data yolo:../shared/data/tiny_imagenet_loc]
        [--sizes 64,96,128,160] [--steps 160] [--preset photos|photos_lite0|...] [--frozen-blocks 6]

For each input size, the preset's model (`--preset`, default `photos`) is
trained on the real pipeline (decoding cached, augmentation and map
supervision on, the preset's batch size and steps per execution) for
`--steps` optimizer steps after a warm-up fit, and timed. A pretrained
backbone is timed after its warm-up (the backbone training, its first
`--frozen-blocks` blocks frozen), the phase that takes most of a fine-tuning.
Prints JSON: images/s per size and the CPU; with 96 px among the sizes also the
cost per image relative to 96 px, the (size / 96)^2 that `locnet_tf.train.recipe`
budgets the from-scratch network with, and the seconds the recipe's
`COMPUTE_IMAGES` takes at each size here. Compare within
one run: these machines are shared.
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(__file__))

from real_photos import cpu_name  # noqa: E402  (the same CPU line as the real-photo benchmark)


def rate(spec, size, steps, preset="photos", frozen_blocks=None):
    """Images/s of `preset`'s training step at `size` px on `spec`."""
    from locnet_tf.core import config as config_lib
    from locnet_tf.model import finetune, losses, network as model
    from locnet_tf.train import run as train

    overrides = {} if frozen_blocks is None else {"backbone_frozen_blocks": frozen_blocks}
    config = config_lib.preset(preset, data=spec, image_size=size, evaluate=False, calibrate=False, **overrides)
    train_ds, _ = train.datasets(config, config.batch_size)
    for _ in train_ds:  # decode once into the cache, as training's first epoch does
        pass
    trainer = model.build_model(class_names=train_ds.class_names, **config.model_kwargs())
    # No warm-up of new layers (steps_per_epoch 0): the backbone trains from the first step.
    optimizer = finetune.make_optimizer(trainer, config, config.learning_rate, 0)
    jit = train._jit(config.jit_compile)
    trainer = train.compile_for_training(trainer, config, losses.LocalizationLoss(), optimizer, jit)
    data = train_ds.repeat()
    warm = max(config.steps_per_execution, 40 // config.steps_per_execution * config.steps_per_execution)
    trainer.fit(data, steps_per_epoch=warm, epochs=1, verbose=0)
    start = time.perf_counter()
    trainer.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    return steps * config.batch_size / (time.perf_counter() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="yolo:../shared/data/tiny_imagenet_loc")
    parser.add_argument("--sizes", default="64,96,128,160")
    parser.add_argument("--steps", type=int, default=160, help="timed steps per size (a multiple of 8)")
    parser.add_argument("--preset", default="photos", help="the preset whose network is timed")
    parser.add_argument("--frozen-blocks", type=int, default=None, help="a pretrained backbone's frozen blocks")
    args = parser.parse_args(argv)
    from locnet_tf.train import recipe

    sizes = [int(s) for s in args.sizes.split(",")]
    rates = {s: rate(args.data, s, args.steps, args.preset, args.frozen_blocks) for s in sizes}
    result = {
        "cpu": cpu_name(),
        "data": args.data,
        "preset": args.preset,
        "frozen_blocks": args.frozen_blocks,
        "images_per_second": {s: round(r, 1) for s, r in rates.items()},
    }
    if 96 in rates:  # the from-scratch recipe's budget is counted in 96 px images
        base = rates[96]
        result.update(
            cost_per_image_vs_96px={s: round(base / r, 2) for s, r in rates.items()},
            **{"budget_scale_(size/96)^2": {s: round((s / 96) ** 2, 2) for s in rates}},
            budget_seconds={s: round(recipe.COMPUTE_IMAGES * (96 / s) ** 2 / r) for s, r in rates.items()},
        )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
