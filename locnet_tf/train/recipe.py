"""The default command's recipe, chosen from the data (`--preset auto`, the default).

`python -m locnet_tf.train --data SPEC --out RUN` with no other flag looks at
the data before it trains:

- the built-in synthetic data get the synthetic recipe (the `default` preset:
  40,000 unaugmented images, no more is needed);
- anything else, a user's own photos, gets the real-photo recipe: the
  pretrained one (the `photos_lite0` preset: EfficientNet-Lite0 starting from
  the ImageNet weights that ship with the package), or with `--backbone simple`
  (or another backbone) the from-scratch one (the `photos` preset), each with
  two values read off the data:

  * the input size: large enough that the median object spans about
    `OBJECT_PIXELS` pixels, at least `MIN_SIZE` (finer boxes), no larger than
    the photos themselves (upsampling adds no detail; 64 px photos train at
    64) and at most `MAX_SIZE` px;
  * the training length, as a number of images seen rather than epochs, so
    that 300 photos and 30,000 both get enough optimizer steps:
    `COMPUTE_IMAGES` images at 96 px (a fixed amount of compute; fewer at a
    larger input, more at a smaller one), and never under `MIN_EPOCHS`
    passes over a large set.

  The pretrained recipe picks its size from `LITE_SIZES` (multiples of the
  network's stride, 32; at least `LITE_MIN_SIZE`, since ImageNet features
  need a few cells per object even on small photos) and trains
  `LITE_COMPUTE_IMAGES` at `LITE_REFERENCE_SIZE` px: a pretrained network
  needs far fewer steps than one learning from nothing. On a few hundred
  photos that budget would be a hundred passes over them, and half of it
  scores as well: it stops at `LITE_MAX_PASSES` passes, which the full sets
  never reach. What those few hundred photos leave of the budget buys pixels
  instead: a larger input, up to `LITE_FEW_PHOTOS_SIZE` and at most one size
  above the photos' own, as long as `LITE_MAX_PASSES` passes at it stay
  within the budget.

`resolve` prints one line saying what it chose and why; flags given on the
command line win over every chosen value, and `config.json` records the
result.
"""

import dataclasses
import math
from typing import Optional, Tuple

import numpy as np

from locnet_tf.core import config as config_lib
from locnet_tf.core import specs

AUTO = "auto"
# Input sizes the recipe picks from (multiples of the backbone's stride, 16).
SIZES = (64, 96, 128, 160, 192)
MAX_SIZE = 160
# Photos that are large enough train at this size at least, even when their
# objects would show at a smaller one: the box head reads a 16x16 map instead
# of 12x12. Caltech (objects 67% of the side): IoU 0.845 / 0.861 at 128 px
# against 0.866 / 0.827 / 0.795 at 96, in the same time (a fixed budget).
MIN_SIZE = 128
# The median object should span about this many pixels at the model input:
# the box head reads positions off a stride-8 map, and recognising a class
# needs a few cells of it.
OBJECT_PIXELS = 48
# Training length: images seen, in 96 px equivalents (a step at S px costs
# about (S / 96)^2 of one at 96 px; on a 2-core CPU somewhat more above 96 px
# and less below, see docs/real_photos.md). 120,000 at 96 px is about 2.5
# minutes of training on a 2-core AVX-512 CPU: enough for Tiny ImageNet's class
# accuracy to leave the lecture network's behind (80,000 is not, 160,000 adds
# little; docs/real_photos.md).
COMPUTE_IMAGES = 120_000
MIN_EPOCHS = 10
# Warm-up: at most this share of the training (the preset's one epoch of 200
# steps was a third of hands_loc's 600; a tenth gave loc 0.885 against 0.859).
WARMUP_SHARE = 0.1
# Steps of an epoch at least (smaller sets repeat within an epoch; see `schedule`).
EPOCH_STEPS = 200
# How many images the profile reads for sizes when a source does not list them.
PROFILE_SAMPLE = 512


# The pretrained recipe (EfficientNet-Lite0; docs/real_photos.md, "EfficientNet-Lite0").
LITE_BACKBONE = "efficientnet_lite0"
LITE_SIZES = (128, 160, 192, 224)
LITE_MIN_SIZE = 128
LITE_MAX_SIZE = 160
LITE_REFERENCE_SIZE = 160
# 38,400, not 19,200: hands_loc's validation IoU still rose after 19,200 (test loc/IoU/class
# 0.920 / 0.786 / 0.958 at 19,200, 0.936 / 0.808 / 0.965 at 38,400; docs/real_photos.md).
LITE_COMPUTE_IMAGES = 38_400
LITE_MIN_EPOCHS = 3
# At most this many passes over the training photos; only sets under about 700 photos at 160 px
# (1,100 at 128) reach it. On 363 hands photos 55 passes scored as well as the budget's 106, in
# half the time, and 35 lost IoU (docs/real_photos.md, sixth session).
LITE_MAX_PASSES = 55
# The largest input a small set gets with what the pass cap leaves of the budget (sets under about
# 485 photos whose photos are over 160 px). 363 hands photos at 192 px instead of 160: loc
# 0.931 against 0.917, IoU 0.824 against 0.809, class 0.961 against 0.949 (means of eight seeds,
# every seed better), for 1.44x the compute; 192 px at 160 px's compute (35 passes) gained
# nothing (docs/real_photos.md, tenth and eleventh sessions).
LITE_FEW_PHOTOS_SIZE = 192


@dataclasses.dataclass
class DataProfile:
    """What the recipe needs to know about a source's training split.

    train_images: int. Images in the train split.
    image_size: (height, width) median, in pixels, or None when unknown.
    object_side: float. Median of sqrt(box height x width), relative to the image.
    background_share: float. Share of training images with no object.
    num_classes: int.
    """

    train_images: int
    image_size: Optional[Tuple[int, int]]
    object_side: float
    background_share: float
    num_classes: int

    def describe(self):
        size = f"{self.image_size[1]}x{self.image_size[0]} px" if self.image_size else "size unknown"
        return (
            f"{self.train_images} training photos ({size} median, objects {self.object_side:.0%} of the side, "
            f"{self.background_share:.0%} background, {self.num_classes} classes)"
        )


def profile(config, source=None):
    """The `DataProfile` of `config.data`'s train split (with the config's data options).

    `source`: its `data.sources.Source` if the command resolved it already (read once, shared with training).
    """
    from locnet_tf.data import sources

    source = sources.for_config(config, source)
    if source.is_file:
        data = source.data
        records = data.records["train"]
        sizes = [r.size for r in records if r.size]
        boxes = np.asarray([r.box for r in records if r.present], np.float64).reshape(-1, 4)
        background = sum(not r.present for r in records)
        count, num_classes = len(records), len(data.class_names)
    else:  # tfds: a sample of decoded examples
        from locnet_tf.data import pipeline

        dataset, names = pipeline.examples(source, "train")
        count = int(dataset.cardinality())
        sizes, kept, background = [], [], 0
        for example in dataset.take(PROFILE_SAMPLE).as_numpy_iterator():
            sizes.append(example["image"].shape[:2])
            if example["present"]:
                kept.append(example["box"])
            else:
                background += 1
        sample = max(len(sizes), 1)
        count = count if count > 0 else len(sizes)
        background = background * count / sample
        boxes = np.asarray(kept, np.float64).reshape(-1, 4)
        num_classes = len(names)
    median = tuple(int(v) for v in np.median(np.asarray(sizes), axis=0)) if sizes else None
    side = float(np.median(np.sqrt(boxes[:, 2] * boxes[:, 3]))) if len(boxes) else 0.5
    return DataProfile(count, median, side, background / max(count, 1), num_classes)


def input_size(prof, backbone="simple"):
    """The input size for a profile and backbone (see the module docstring)."""
    wanted = OBJECT_PIXELS / max(prof.object_side, 1e-3)
    if backbone == LITE_BACKBONE:
        size = max(LITE_MIN_SIZE, min(LITE_MAX_SIZE, next((s for s in LITE_SIZES if s >= wanted), LITE_SIZES[-1])))
        return max(size, _lite_few_photos_size(prof))
    native = min(prof.image_size) if prof.image_size else MAX_SIZE
    # The largest size the photos fill without upsampling, and the smallest that shows the objects well.
    cap = max([s for s in SIZES if s <= min(native, MAX_SIZE)], default=SIZES[0])
    enough = max(MIN_SIZE, next((s for s in SIZES if s >= wanted), SIZES[-1]))
    return min(enough, cap)


def _lite_few_photos_size(prof):
    """The largest Lite0 input at which `LITE_MAX_PASSES` passes over the photos fit the budget (0: none).

    At most `LITE_FEW_PHOTOS_SIZE`, and at most one size above the photos'
    smaller side: upsampling adds no detail, but the box head's map gets
    finer cells (363 Caltech photos, 166 px tall, IoU 0.883 at 128 px, 0.890
    at 160, 0.894 at 192). 0 when the photos' size is unknown.
    """
    if not prof.image_size:
        return 0
    limit = next((size for size in LITE_SIZES if size >= min(prof.image_size)), LITE_SIZES[-1])
    fits = [
        size
        for size in LITE_SIZES
        if size <= min(LITE_FEW_PHOTOS_SIZE, limit) and LITE_MAX_PASSES * prof.train_images <= _lite_budget(size)
    ]
    return max(fits, default=0)


def schedule(prof, image_size, batch_size, steps_per_execution=1, backbone="simple"):
    """The recipe's training length: `(epochs, steps_per_epoch)`.

    `images_seen` images (see the module docstring) in optimizer steps of
    `batch_size`. A split of at least `EPOCH_STEPS` batches trains in passes
    over it (`steps_per_epoch` None); a smaller one in epochs of `EPOCH_STEPS`
    steps over the repeated data, so that what happens once an epoch
    (validation, checkpoint, curves) stays a small share of the time: 400
    passes over 363 photos spent more time between epochs than in them.
    """
    total = math.ceil(images_seen(prof, image_size, backbone) / batch_size)
    batches = math.ceil(prof.train_images / batch_size)
    if batches >= EPOCH_STEPS:
        return max(1, round(total / batches)), None
    steps = math.ceil(EPOCH_STEPS / steps_per_execution) * steps_per_execution  # whole executions per epoch
    return max(1, round(total / steps)), steps


def images_seen(prof, image_size, backbone="simple"):
    """How many training images (with repeats) the recipe shows the model."""
    if backbone == LITE_BACKBONE:
        budget = min(_lite_budget(image_size), LITE_MAX_PASSES * prof.train_images)
        return max(budget, LITE_MIN_EPOCHS * prof.train_images)
    return max(COMPUTE_IMAGES * (96 / image_size) ** 2, MIN_EPOCHS * prof.train_images)


def _lite_budget(image_size):
    """The pretrained recipe's budget in images at `image_size` px: `LITE_COMPUTE_IMAGES` at the reference size."""
    return LITE_COMPUTE_IMAGES * (LITE_REFERENCE_SIZE / image_size) ** 2


def photo_values(prof, base, given=()):
    """The values the real-photo recipe reads off the data, for the fields not in `given`.

    `image_size`, and the training length (`epochs`, `steps_per_epoch`,
    `warmup_epochs`); when the user gives `epochs` or `steps_per_epoch`, the
    length is theirs.
    `base`: the photos preset with the given fields applied.
    """
    size = base.image_size if "image_size" in given else input_size(prof, base.backbone)
    values = {"image_size": size}
    if "epochs" not in given and "steps_per_epoch" not in given:
        epochs, steps = schedule(prof, size, base.batch_size, base.steps_per_execution, base.backbone)
        values.update(epochs=epochs, steps_per_epoch=steps)
        # The preset's one epoch of warm-up, but no more than WARMUP_SHARE of the training.
        values["warmup_epochs"] = round(min(base.warmup_epochs, WARMUP_SHARE * epochs), 2)
        if base.freeze_backbone_epochs:  # the pretrained recipe's head-only start: as short as the warm-up
            values["freeze_backbone_epochs"] = round(min(base.freeze_backbone_epochs, WARMUP_SHARE * epochs), 2)
    return {k: v for k, v in values.items() if k not in given}


def resolve(preset_name, given, notice=print, source=None):
    """The `Config` for a preset name (or `"auto"`) and the fields given on the command line.

    Args:
        preset_name: str. A preset of `config.PRESETS`, or `"auto"`.
        given: dict of fields the user set (they win over everything).
        notice: called with the one line that says what `"auto"` chose.
        source: the `data.sources.Source` of the data, if resolved already (`profile` reads it).
    """
    config = _choose(preset_name, given, notice, source)
    if config.init:
        config = with_init(config, given, notice)
    if "weights" not in given:
        # Lite0 starts from its shipped ImageNet weights unless told otherwise (--init copies over them);
        # the other backbones from nothing (their `imagenet` downloads).
        weights = "imagenet" if config.backbone == LITE_BACKBONE else None
        config = dataclasses.replace(config, weights=weights)
    return config


def with_init(config, given, notice=print):
    """`config` set up to fine-tune its `--init` model: that model's architecture and `FINETUNE`'s schedule.

    Fields in `given` (the user's flags) are left as they are.
    """
    from locnet_tf.train import transfer

    arch = transfer.architecture(transfer.load(config.init))
    values = {k: v for k, v in arch.items() if k in transfer.ARCHITECTURE_FIELDS and v is not None}
    values.update(FINETUNE)
    values = {k: v for k, v in values.items() if k not in given}
    notice(
        f"Fine-tuning {config.init}: its architecture ({arch['backbone']}, filters {arch['filters']}), "
        f"learning rate {config.learning_rate:g}, no progressive resizing."
    )
    return dataclasses.replace(config, **values)


# What changes when training starts from a trained model (`--init`):
# progressive resizing (which saves compute early in training from scratch) is
# off. The learning rate stays: a lower peak (1e-3, 5e-4) fine-tuned worse on
# every real set measured (docs/real_photos.md).
FINETUNE = {"progressive_share": 0.0}


def _choose(preset_name, given, notice, source=None):
    if preset_name != AUTO:
        return config_lib.preset(preset_name, **given)
    data = given.get("data", config_lib.Config.data)
    if specs.is_synthetic(data):
        notice(f"Recipe: synthetic ({data} is the built-in data; the `default` preset).")
        return config_lib.preset("default", **given)
    backbone = given.get("backbone")
    if backbone is None and given.get("init"):  # fine-tuning: the --init model's backbone
        from locnet_tf.train import transfer

        backbone = transfer.architecture(transfer.load(given["init"]))["backbone"]
    pretrained = backbone in (None, LITE_BACKBONE)
    base = config_lib.preset("photos_lite0" if pretrained else "photos", **given)
    prof = profile(base, source)
    config = dataclasses.replace(base, **photo_values(prof, base, given))
    batches = math.ceil(prof.train_images / config.batch_size)
    steps = (config.steps_per_epoch or batches) * config.epochs
    passes = steps * config.batch_size / max(prof.train_images, 1)
    epochs = f"{config.epochs} epochs" + (f" of {config.steps_per_epoch} steps" if config.steps_per_epoch else "")
    name = (
        "photos, pretrained EfficientNet-Lite0 (ImageNet features; --backbone simple trains from scratch)"
        if pretrained
        else f"photos, {config.backbone} from scratch"
    )
    notice(
        f"Recipe: {name} ({prof.describe()}): {config.image_size} px, {steps} steps of {config.batch_size} "
        f"({epochs}, {passes:.0f} passes over the photos); flags override any of it."
    )
    return config
