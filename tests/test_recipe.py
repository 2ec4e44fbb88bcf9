"""The default command's recipe, chosen from the data (`locnet_tf.train.recipe`)."""

import json

import numpy as np
import pytest
from PIL import Image

from locnet_tf.core import config as config_lib
from locnet_tf.train import recipe
from locnet_tf.train import run as train_lib
from locnet_tf.train import __main__ as train_main


def _photos(folder, n, width, height, side=0.3, background=0):
    """`n` JPEGs of `width` x `height` with one box of `side` x the image each (the first `background` have none)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        name = f"img_{i:03d}.jpg"
        Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(folder / name)
        if i < background:
            rows.append(f"{name},,,,,")
        else:
            w, h = side * width, side * height
            rows.append(f"{name},10,12,{10 + w:.0f},{12 + h:.0f},{'cat' if i % 2 else 'dog'}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return f"csv:{folder / 'labels.csv'}"


def test_profile_reads_counts_sizes_and_objects(tmp_path):
    spec = _photos(tmp_path / "a", 40, 200, 150, side=0.3, background=10)
    prof = recipe.profile(config_lib.preset("photos", data=spec))
    assert 20 <= prof.train_images <= 40  # the hash split puts about 80% in train
    assert prof.image_size == (150, 200)
    assert prof.object_side == pytest.approx(0.3, abs=0.01)
    assert 0.1 < prof.background_share < 0.45
    assert prof.num_classes == 2
    assert "200x150 px median" in prof.describe()


@pytest.mark.parametrize(
    "image_size, side, expected",
    [
        ((64, 64), 0.6, 64),  # Tiny ImageNet: no larger than the photos themselves
        ((240, 320), 0.3, 160),  # small hands in 320x240 photos: large enough to see them
        ((200, 260), 0.7, recipe.MIN_SIZE),  # large objects: 96 px would show them, 128 gives finer boxes
        ((1080, 1920), 0.05, recipe.MAX_SIZE),  # tiny objects in big photos: capped
        ((100, 100), 0.1, 96),  # small photos: no upsampling past the next size up
        (None, 0.5, recipe.MIN_SIZE),  # sizes unknown
    ],
)
def test_input_size_follows_the_objects_and_the_photos(image_size, side, expected):
    prof = recipe.DataProfile(1000, image_size, side, 0.0, 3)
    assert recipe.input_size(prof) == expected


def test_training_length_is_set_in_optimizer_steps_not_epochs():
    def steps(n, size, batch=64):
        epochs, per_epoch = recipe.schedule(recipe.DataProfile(n, (300, 300), 0.5, 0.0, 3), size, batch, 8)
        return epochs * (per_epoch or -(-n // batch)), epochs, per_epoch

    # A few hundred photos and a few thousand get about the same work (images seen at 96 px;
    # whole epochs of 200 steps, or of a pass over 3,000 photos, round it by a few per cent)...
    small, few = steps(300, 96), steps(3000, 96)
    assert small[0] * 64 == pytest.approx(recipe.COMPUTE_IMAGES, rel=0.05)
    assert few[0] * 64 == pytest.approx(recipe.COMPUTE_IMAGES, rel=0.05)
    # ...the few hundred in epochs of EPOCH_STEPS steps over the repeated photos (whole executions of 8),
    assert small[2] == recipe.EPOCH_STEPS and small[2] % 8 == 0
    # a large set in passes over it, at least MIN_EPOCHS of them.
    large = steps(60000, 96)
    assert large[2] is None and large[1] == recipe.MIN_EPOCHS
    # A larger input costs more per image, so fewer of them.
    assert steps(3000, 128)[0] < steps(3000, 96)[0] < steps(3000, 64)[0]


def test_the_pretrained_recipe_stops_at_max_passes_on_a_few_hundred_photos():
    lite = config_lib.preset("photos_lite0")

    def length(n, side):
        """(input size, images seen, passes) of the pretrained recipe on n photos of objects `side` wide."""
        values = recipe.photo_values(recipe.DataProfile(n, (240, 320), side, 0.0, 6), lite)
        steps = values["epochs"] * (values["steps_per_epoch"] or -(-n // lite.batch_size))
        return values["image_size"], steps * lite.batch_size, steps * lite.batch_size / n

    # 363 hands photos: about LITE_MAX_PASSES passes (whole epochs of 200 steps round it), not
    # the hundred that the fixed budget would be, at the larger input that the rest buys.
    size, seen, passes = length(363, 0.32)
    assert size == recipe.LITE_FEW_PHOTOS_SIZE and seen < 0.6 * recipe.LITE_COMPUTE_IMAGES
    assert passes == pytest.approx(recipe.LITE_MAX_PASSES, rel=0.2)
    # The full sets never reach the cap: hands_loc (1,067 photos at 160 px) and caltech101_loc
    # (1,647 at 128 px) train the whole budget, scaled by (160 / size)^2.
    assert length(1067, 0.32)[1] == pytest.approx(recipe.LITE_COMPUTE_IMAGES, rel=0.05)
    size, seen, passes = length(1647, 0.67)
    assert size == 128 and seen == pytest.approx(recipe.LITE_COMPUTE_IMAGES * (160 / 128) ** 2, rel=0.05)
    # A few dozen photos still get one epoch of EPOCH_STEPS steps: the new layers need the steps.
    assert length(30, 0.32)[1] == recipe.EPOCH_STEPS * lite.batch_size


def test_auto_chooses_the_synthetic_recipe_for_the_builtin_data(capsys):
    args = train_main.build_parser().parse_args(["--out", "x"])
    assert args.preset == recipe.AUTO
    assert train_main.config_from_args(args) == config_lib.preset("default")
    assert "Recipe: synthetic" in capsys.readouterr().out
    args = train_main.build_parser().parse_args(["--data", "synthetic", "--epochs", "2"])
    assert train_main.config_from_args(args) == config_lib.preset("default", data="synthetic", epochs=2)


def test_auto_chooses_the_photo_recipe_for_photos_and_flags_win(tmp_path, capsys):
    # The from-scratch recipe (`--backbone simple`; the pretrained one: tests/test_efficientnet_lite.py).
    spec = _photos(tmp_path / "b", 30, 320, 240, side=0.3)
    args = train_main.build_parser().parse_args(["--data", spec, "--backbone", "simple"])
    config = train_main.config_from_args(args)
    line = capsys.readouterr().out
    assert line.startswith("Recipe: photos, simple from scratch (") and "160 px" in line and "flags override" in line
    photos = config_lib.preset("photos")
    assert config.augment and config.image_size == 160 and config.depths == photos.depths
    epochs, per_epoch = recipe.schedule(recipe.profile(config), 160, config.batch_size, config.steps_per_execution)
    assert (config.epochs, config.steps_per_epoch) == (epochs, per_epoch) and per_epoch == recipe.EPOCH_STEPS
    assert "steps of 64" in line and "passes over the photos" in line
    # Every flag still wins; the recipe fills in only what was not given.
    flags = ["--data", spec, "--backbone", "simple", "--image-size", "64", "--epochs", "3"]
    config = train_main.config_from_args(train_main.build_parser().parse_args(flags))
    assert (config.image_size, config.epochs, config.steps_per_epoch) == (64, 3, None)
    # A preset named on the command line is taken as it is.
    args = train_main.build_parser().parse_args(["--data", spec, "--preset", "photos"])
    assert train_main.config_from_args(args) == config_lib.preset("photos", data=spec)
    # Without --backbone, photos get the pretrained recipe.
    config = train_main.config_from_args(train_main.build_parser().parse_args(["--data", spec]))
    assert config.backbone == "efficientnet_lite0" and "pretrained EfficientNet-Lite0" in capsys.readouterr().out


def test_config_json_records_the_resolved_recipe(tmp_path):
    spec = _photos(tmp_path / "c", 30, 96, 96, side=0.5)
    flags = ["--data", spec, "--backbone", "simple", "--epochs", "1", "--no-evaluate", "--no-calibrate"]
    args = train_main.build_parser().parse_args(flags)
    config = train_main.config_from_args(args, notice=lambda line: None)
    train_lib.train(config, out=str(tmp_path / "run"), verbose=0)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["image_size"] == config.image_size == 96 and saved["augment"] is True and saved["epochs"] == 1


def test_warm_up_is_at_most_a_tenth_of_a_short_training():
    photos = config_lib.preset("photos")
    # hands_loc: 1,067 photos at 160 px train 3 epochs of 200 steps; one epoch of warm-up would be a third.
    hands = recipe.photo_values(recipe.DataProfile(1067, (240, 320), 0.32, 0.0, 6), photos)
    assert hands["image_size"] == 160 and hands["epochs"] == 3
    assert hands["warmup_epochs"] == pytest.approx(0.1 * hands["epochs"])
    # A long training keeps the preset's one epoch.
    tiny = recipe.photo_values(recipe.DataProfile(4500, (64, 64), 0.81, 0.0, 10), photos)
    assert tiny["warmup_epochs"] == photos.warmup_epochs
    # The user's flag wins.
    given = recipe.photo_values(recipe.DataProfile(1067, (240, 320), 0.32, 0.0, 6), photos, given={"warmup_epochs"})
    assert "warmup_epochs" not in given


@pytest.mark.parametrize(
    "photos, image_size, side, expected",
    [
        (363, (240, 320), 0.32, 192),  # hands363: the pass cap leaves budget, the photos have the pixels
        (484, (240, 320), 0.32, 192),  # the largest set whose LITE_MAX_PASSES passes at 192 px fit the budget
        (485, (240, 320), 0.32, 160),  # one more photo: they would not
        (1067, (240, 320), 0.32, 160),  # hands_loc: the whole budget is spent in passes
        (363, (166, 396), 0.67, 192),  # Caltech's 166 px photos: one size above them (a finer map), not more
        (363, (150, 200), 0.32, 160),  # 150 px photos: 160 is the size above them
        (363, (120, 160), 0.67, 128),  # 120 px photos of large objects: 128
        (363, (64, 64), 0.6, recipe.LITE_MIN_SIZE),  # Tiny ImageNet's 64 px photos
        (363, None, 0.32, 160),  # sizes unknown: nothing to gain from
    ],
)
def test_the_pretrained_recipe_spends_what_few_photos_leave_of_the_budget_on_pixels(photos, image_size, side, expected):
    prof = recipe.DataProfile(photos, image_size, side, 0.0, 6)
    size = recipe.input_size(prof, recipe.LITE_BACKBONE)
    assert size == expected
    # Never past the budget that the full sets train with.
    budget = recipe.LITE_COMPUTE_IMAGES * (recipe.LITE_REFERENCE_SIZE / size) ** 2
    assert recipe.images_seen(prof, size, recipe.LITE_BACKBONE) <= budget
