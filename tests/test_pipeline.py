"""The tf.data pipeline: each function eagerly and inside Dataset.map, and make_dataset."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import locnet_tf  # noqa: F401
from locnet_tf.core.errors import DataError
from locnet_tf.data import decode as decode_lib
from locnet_tf.data import pipeline
from locnet_tf.core.records import BOX, CLASS_ID, IMAGE, PATH, PRESENT, Record
from locnet_tf.model.target import TargetLayout

MODES = ["eager", "map"]


def run(fn, mode, *args):
    """Calls `fn(*args)` eagerly, or inside `Dataset.map` over one element."""
    if mode == "eager":
        return fn(*args)
    ds = tf.data.Dataset.from_tensors(args).map(lambda *a: fn(*a))
    return ds.get_single_element()


def example(image, box=(0.5, 0.5, 0.2, 0.2), present=True, class_id=1):
    return {
        IMAGE: tf.constant(image, tf.uint8),
        BOX: tf.constant(box, tf.float32),
        CLASS_ID: tf.constant(class_id, tf.int32),
        PRESENT: tf.constant(present),
    }


def rectangle_example(size=96, x=(30, 60), y=(20, 50)):
    """A white rectangle on black, with its exact box (pixel i covers [i, i+1))."""
    image = np.zeros((size, size, 3), np.uint8)
    image[y[0] : y[1], x[0] : x[1]] = 255
    box = ((x[0] + x[1]) / 2 / size, (y[0] + y[1]) / 2 / size, (y[1] - y[0]) / size, (x[1] - x[0]) / size)
    return example(image, box)


def pixel_box(image, threshold=128):
    """Bright pixels' extent as relative (x1, y1, x2, y2), or None."""
    bright = np.asarray(image).max(-1) > threshold
    if not bright.any():
        return None, 0
    rows, cols = np.flatnonzero(bright.any(1)), np.flatnonzero(bright.any(0))
    h, w = bright.shape
    return (cols[0] / w, rows[0] / h, (cols[-1] + 1) / w, (rows[-1] + 1) / h), int(bright.sum())


def corners(box):
    cx, cy, h, w = np.asarray(box, np.float64)
    return cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2


# ----------------------------------------------------------------------------
# Decode.


@pytest.fixture
def image_files(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)
    gray = rng.integers(0, 255, (20, 30), dtype=np.uint8)
    rgba = rng.integers(0, 255, (20, 30, 4), dtype=np.uint8)
    files = {
        "rgb.png": (rgb, rgb),
        "gray.png": (gray, np.repeat(gray[..., None], 3, -1)),
        "rgba.png": (rgba, rgba[..., :3]),
    }
    for name, (pixels, _) in files.items():
        Image.fromarray(pixels).save(tmp_path / name)
    Image.fromarray(rgb).save(tmp_path / "rgb.jpg", quality=95)
    Image.fromarray(gray).save(tmp_path / "gray.jpg", quality=95)
    return tmp_path, {k: v[1] for k, v in files.items()}


@pytest.mark.parametrize("mode", MODES)
def test_decode_png_gray_rgba_jpeg_to_rgb(image_files, mode):
    folder, expected = image_files
    for name, pixels in expected.items():
        out = run(decode_lib.decode, mode, {PATH: tf.constant(str(folder / name))})
        np.testing.assert_array_equal(out[IMAGE].numpy(), pixels)
    for name in ("rgb.jpg", "gray.jpg"):
        out = run(decode_lib.decode, mode, {PATH: tf.constant(str(folder / name))})
        assert out[IMAGE].shape == (20, 30, 3) and out[IMAGE].dtype == tf.uint8
    gray = run(decode_lib.decode, mode, {PATH: tf.constant(str(folder / "gray.jpg"))})[IMAGE].numpy()
    assert (gray[..., 0] == gray[..., 2]).all()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "case,problem",
    [
        ("truncated.jpg", "truncated"),
        ("truncated.png", "truncated"),
        ("empty.jpg", "empty"),
        ("text.png", "not a JPEG"),
    ],
)
def test_bad_image_files_fail_naming_the_file(tmp_path, image_files, case, problem, mode):
    folder, _ = image_files
    source = {"truncated.jpg": "rgb.jpg", "truncated.png": "rgb.png"}.get(case)
    if source:
        data = (folder / source).read_bytes()
        (tmp_path / case).write_bytes(data[: len(data) * 2 // 3])
    elif case == "empty.jpg":
        (tmp_path / case).write_bytes(b"")
    else:
        (tmp_path / case).write_text("this is not an image\n")
    with pytest.raises(tf.errors.InvalidArgumentError, match=case) as info:
        run(decode_lib.decode, mode, {PATH: tf.constant(str(tmp_path / case))})
    assert problem in str(info.value)


def test_missing_file_error_names_it(tmp_path):
    with pytest.raises(tf.errors.NotFoundError, match="nowhere.jpg"):
        decode_lib.decode({PATH: tf.constant(str(tmp_path / "nowhere.jpg"))})


def test_real_jpegs_pass_the_checks(caltech_dir):
    # Real camera files (some grayscale) must not trip the truncation checks.
    paths = sorted((caltech_dir / "images").glob("*/*.jpg"))[::40]
    for path in paths:
        image = decode_lib.read_image(str(path))
        assert image.shape[-1] == 3 and image.shape[0] > 10


# ----------------------------------------------------------------------------
# Resize.


@pytest.mark.parametrize("mode", MODES)
def test_stretch_keeps_relative_box(mode):
    ex = example(np.zeros((40, 100, 3), np.uint8), box=(0.3, 0.6, 0.2, 0.4))
    out = run(lambda e: pipeline.resize(e, 64, "stretch"), mode, ex)
    assert out[IMAGE].shape == (64, 64, 3) and out[IMAGE].dtype == tf.uint8
    np.testing.assert_allclose(out[BOX], [0.3, 0.6, 0.2, 0.4], atol=1e-6)


@pytest.mark.parametrize("mode", MODES)
def test_letterbox_arithmetic(mode):
    # Tall 100x50 (HxW) image to 128: scale = min(128/100, 128/50) = 1.28,
    # resized to 128x64, padded left = (128 - 64) / 2 = 32.
    # Box cx = 0.5 -> (32 + 0.5*64)/128 = 0.5; cy = 0.25 -> 0.25; h = 0.2 -> 0.2*128/128 = 0.2;
    # w = 0.4 -> 0.4*64/128 = 0.2.
    out = run(
        lambda e: pipeline.resize(e, 128, "letterbox", pad_value=7),
        mode,
        example(np.full((100, 50, 3), 200, np.uint8), box=(0.5, 0.25, 0.2, 0.4)),
    )
    np.testing.assert_allclose(out[BOX], [0.5, 0.25, 0.2, 0.2], atol=1e-6)
    image = out[IMAGE].numpy()
    assert (image[:, :32] == 7).all() and (image[:, 96:] == 7).all() and (image[:, 32:96] == 200).all()
    # Wide 60x200 image to 100: scale = min(100/60, 100/200) = 0.5 -> 30x100, top = (100-30)/2 = 35.
    # cx = 0.1 -> (0 + 0.1*100)/100 = 0.1; cy = 0.2 -> (35 + 0.2*30)/100 = 0.41;
    # h = 0.5 -> 0.5*30/100 = 0.15; w = 0.2 -> 0.2.
    out = run(
        lambda e: pipeline.resize(e, 100, "letterbox"),
        mode,
        example(np.full((60, 200, 3), 9, np.uint8), box=(0.1, 0.2, 0.5, 0.2)),
    )
    np.testing.assert_allclose(out[BOX], [0.1, 0.41, 0.15, 0.2], atol=1e-6)
    image = out[IMAGE].numpy()
    assert (image[:35] == 0).all() and (image[65:] == 0).all() and (image[35:65] == 9).all()


def test_letterbox_moves_box_with_the_pixels():
    image = np.zeros((60, 120, 3), np.uint8)
    image[10:40, 70:110] = 255  # x 70..110, y 10..40 of 120x60
    box = (90 / 120, 25 / 60, 30 / 60, 40 / 120)
    out = pipeline.resize(example(image, box), 96, "letterbox")
    found, _ = pixel_box(out[IMAGE])
    np.testing.assert_allclose(found, corners(out[BOX]), atol=1.01 / 96)


def test_background_box_stays_zero_under_letterbox():
    out = pipeline.resize(example(np.zeros((30, 60, 3), np.uint8), (0, 0, 0, 0), present=False), 32, "letterbox")
    np.testing.assert_array_equal(out[BOX], [0, 0, 0, 0])


# ----------------------------------------------------------------------------
# Augment.


@pytest.mark.parametrize("mode", MODES)
def test_augment_keeps_box_and_pixels_in_step(mode):
    checked = 0
    for i in range(24):
        ex = rectangle_example()
        out = run(pipeline.augment, mode, ex, tf.constant([i, 7], tf.int64))
        assert out[IMAGE].shape == (96, 96, 3) and out[IMAGE].dtype == tf.uint8
        if not bool(out[PRESENT]):
            continue
        found, _ = pixel_box(out[IMAGE])
        # Rectangle pixels lie inside the moved box and reach its edges (tight),
        # within one pixel of bilinear blending at the edges.
        np.testing.assert_allclose(found, corners(out[BOX]), atol=1.01 / 96, err_msg=f"seed {i}")
        checked += 1
    assert checked >= 18


def test_augment_geometry_is_subpixel_exact():
    # Without colour changes, the rectangle's intensity-weighted centre and its
    # mass (area) must match the moved box to a fraction of a pixel; an image
    # resampled with corner-aligned instead of half-pixel coordinates drifts
    # by up to half a pixel.
    config = pipeline.AugmentConfig(brightness=0, contrast=None, saturation=None, hue=0)
    size, checked = 96, 0
    for i in range(20):
        out = pipeline.augment(rectangle_example(size), tf.constant([i, 3], tf.int64), config)
        x1, y1, x2, y2 = np.asarray(corners(out[BOX])) * size
        if min(x1, y1) < 1 or max(x2, y2) > size - 1 or not bool(out[PRESENT]):
            continue  # clipped: the centre of the visible part is not the box's
        weight = out[IMAGE].numpy()[..., 0].astype(np.float64) / 255
        rows, cols = np.mgrid[0:size, 0:size] + 0.5
        assert abs((weight * cols).sum() / weight.sum() - (x1 + x2) / 2) < 0.1, i
        assert abs((weight * rows).sum() / weight.sum() - (y1 + y2) / 2) < 0.1, i
        np.testing.assert_allclose(weight.sum(), (x2 - x1) * (y2 - y1), rtol=0.03)
        checked += 1
    assert checked >= 10


def test_augment_is_deterministic_per_seed_and_varies_across_seeds():
    ex = rectangle_example()
    a = pipeline.augment(ex, tf.constant([1, 2], tf.int64))
    b = pipeline.augment(ex, tf.constant([1, 2], tf.int64))
    c = pipeline.augment(ex, tf.constant([3, 4], tf.int64))
    np.testing.assert_array_equal(a[IMAGE], b[IMAGE])
    np.testing.assert_array_equal(a[BOX], b[BOX])
    assert not np.array_equal(a[BOX], c[BOX])


def test_flip_mirrors_the_box():
    config = pipeline.AugmentConfig(
        flip=1.0, zoom=(1, 1), aspect=(1, 1), translate=0.0, brightness=0, contrast=None, saturation=None, hue=0
    )
    ex = rectangle_example(x=(10, 30))  # cx = 20/96
    out = pipeline.augment(ex, tf.constant([0, 0], tf.int64), config)
    np.testing.assert_allclose(out[BOX], [1 - 20 / 96, 35 / 96, 30 / 96, 20 / 96], atol=1e-5)
    np.testing.assert_array_equal(out[IMAGE].numpy(), ex[IMAGE].numpy()[:, ::-1])


@pytest.mark.parametrize("mode", MODES)
def test_mostly_cropped_object_becomes_background(mode):
    # No zoom, so an object keeps its size and the share of its pixels left
    # in view is its visible area: present must agree with >= 40%.
    config = pipeline.AugmentConfig(
        zoom=(1, 1), aspect=(1, 1), translate=0.35, flip=0.0, brightness=0, contrast=None, saturation=None, hue=0
    )
    ex = rectangle_example(size=100, x=(0, 30), y=(35, 65))  # 30x30 at the left edge
    outcomes = set()
    for i in range(40):
        out = run(lambda e, s: pipeline.augment(e, s, config), mode, ex, tf.constant([i, 1], tf.int64))
        _, count = pixel_box(out[IMAGE])
        fraction = count / 900
        present = bool(out[PRESENT])
        if abs(fraction - 0.4) > 0.05:
            assert present == (fraction > 0.4), (i, fraction)
        if not present:
            np.testing.assert_array_equal(out[BOX], [0, 0, 0, 0])
            assert int(out[CLASS_ID]) == 0
        outcomes.add(present)
    assert outcomes == {True, False}


# ----------------------------------------------------------------------------
# Crop around the object (progressive resizing's crop mode).


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("where", [((90, 110), (5, 35)), ((108, 128), (0, 30))], ids=["inside", "at_the_corner"])
def test_crop_keeps_the_whole_object_at_its_own_scale(mode, where):
    # A 20x30 px rectangle in a 128 px image (also touching its edges), 64 px
    # windows: every window holds the whole rectangle, copied pixel for pixel,
    # and the box is exact.
    ex = rectangle_example(size=128, x=where[0], y=where[1])
    origins = set()
    for i in range(20):
        out = run(lambda e, s: pipeline.crop_around_object(e, s, 64), mode, ex, tf.constant([i, 5], tf.int64))
        assert out[IMAGE].shape == (64, 64, 3) and out[IMAGE].dtype == tf.uint8
        found, count = pixel_box(out[IMAGE])
        assert count == 20 * 30, f"seed {i}: the object must be whole, not resampled"
        np.testing.assert_allclose(found, corners(out[BOX]), atol=1e-5, err_msg=f"seed {i}")
        assert bool(out[PRESENT]) and int(out[CLASS_ID]) == 1
        origins.add(tuple(np.round(np.asarray(found) * 64).astype(int)))
    # Inside, windows move from seed to seed; in the corner only one window holds it.
    assert len(origins) > 5 if where[0][0] == 90 else len(origins) == 1


def test_crop_shrinks_the_smallest_window_that_holds_a_large_object():
    # An 80 px tall object does not fit a 64 px window: the 80 px window that
    # holds it is resized to 64 (scale 0.8), and the box follows.
    ex = rectangle_example(size=128, x=(40, 60), y=(20, 100))
    out = pipeline.crop_around_object(ex, tf.constant([1, 2], tf.int64), 64)
    assert out[IMAGE].shape == (64, 64, 3)
    cx, cy, h, w = np.asarray(out[BOX])
    np.testing.assert_allclose([h, w], [1.0, 20 / 80], atol=1e-6)
    found, _ = pixel_box(out[IMAGE])
    np.testing.assert_allclose(found, corners(out[BOX]), atol=1.01 / 64)


def test_crop_of_a_background_image_stays_background():
    image = np.random.default_rng(0).integers(0, 255, (100, 120, 3), dtype=np.uint8)
    out = pipeline.crop_around_object(example(image, (0, 0, 0, 0), present=False), tf.constant([3, 4], tf.int64), 48)
    assert out[IMAGE].shape == (48, 48, 3) and not bool(out[PRESENT])
    np.testing.assert_array_equal(out[BOX], [0, 0, 0, 0])
    # A window of the image, copied: find it.
    crop = out[IMAGE].numpy()
    hits = [
        (y, x) for y in range(100 - 47) for x in range(120 - 47) if np.array_equal(image[y : y + 48, x : x + 48], crop)
    ]
    assert len(hits) == 1


def test_make_dataset_crops_train_windows_anew_each_epoch_and_others_the_same(data_dir):
    kwargs = dict(image_size=64, batch_size=8, crop=48, data_dir=data_dir)
    train = pipeline.make_dataset("synthetic/tiny", "train", augment=False, **kwargs)
    val = pipeline.make_dataset("synthetic/tiny", "validation", **kwargs)
    for ds in (train, val):
        images, _ = next(iter(ds))
        assert images.shape[1:] == (48, 48, 3)

    def targets(ds):  # sorted rows: the train split's shuffling alone must not count as new windows
        rows = np.concatenate([t.numpy() for _, t in ds])
        return rows[np.lexsort(rows.T[::-1])]

    first, second = targets(train), targets(train)
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(first[:, 0], second[:, 0])  # the same images, windows moved
    np.testing.assert_array_equal(targets(val), targets(val))
    with pytest.raises(ValueError, match="crop=64 needs a square image_size larger than it"):
        pipeline.make_dataset("synthetic/tiny", "train", image_size=64, crop=64, data_dir=data_dir)


# ----------------------------------------------------------------------------
# Encode and make_dataset.


@pytest.mark.parametrize("mode", MODES)
def test_to_inputs_encodes_target(mode):
    layout = TargetLayout()
    ex = example(np.full((8, 8, 3), 255, np.uint8), box=(0.5, 0.4, 0.3, 0.2), class_id=2)
    image, target = run(lambda e: pipeline.to_inputs(e, layout), mode, ex)
    assert image.dtype == tf.float32 and float(tf.reduce_max(image)) == 255.0
    np.testing.assert_allclose(target, [1, 0.5, 0.4, 0.3, 0.2, 0, 0, 1], atol=1e-6)
    ex[PRESENT] = tf.constant(False)
    _, target = run(lambda e: pipeline.to_inputs(e, layout), mode, ex)
    np.testing.assert_array_equal(target, np.zeros(8))


def _check_batches(dataset, size, k):
    n = 0
    for images, targets in dataset:
        assert images.dtype == tf.float32 and targets.dtype == tf.float32
        assert images.shape[1:] == (size, size, 3) and targets.shape[1:] == (5 + k,)
        assert float(tf.reduce_min(images)) >= 0 and float(tf.reduce_max(images)) <= 255
        t = targets.numpy()
        assert set(np.unique(t[:, 0])) <= {0.0, 1.0}
        np.testing.assert_allclose(t[:, 5:].sum(1), t[:, 0])
        pos = t[:, 0] == 1
        assert (t[~pos, 1:] == 0).all()
        cx, cy, h, w = t[pos, 1:5].T
        assert (h > 0).all() and (w > 0).all()
        assert (cx - w / 2 >= -1e-5).all() and (cx + w / 2 <= 1 + 1e-5).all()
        assert (cy - h / 2 >= -1e-5).all() and (cy + h / 2 <= 1 + 1e-5).all()
        n += images.shape[0]
    return n


def test_make_dataset_synthetic(data_dir):
    train = pipeline.make_dataset("synthetic/tiny", "train", image_size=64, batch_size=16, data_dir=data_dir)
    assert train.class_names == ("pedestrian", "car", "motorcycle")
    assert _check_batches(train, 64, 3) == 64
    assert _check_batches(train, 64, 3) == 64  # second epoch, from the cache
    # Evaluation splits are neither shuffled nor augmented: two passes agree.
    test = pipeline.make_dataset(
        "synthetic/tiny", "test", image_size=48, batch_size=10, data_dir=data_dir, resize="letterbox"
    )
    first = [t.numpy() for _, t in test]
    second = [t.numpy() for _, t in test]
    assert sum(len(t) for t in first) == 24
    np.testing.assert_array_equal(np.concatenate(first), np.concatenate(second))
    # About a quarter background.
    assert (np.concatenate(first)[:, 0] == 0).sum() == 6
    # The batches hold exactly what `to_inputs` makes of each example (the
    # pipeline keeps images uint8 until they are batched, then casts).
    examples, names = pipeline.cached_examples(
        "synthetic/tiny", "test", image_size=48, resize="letterbox", data_dir=data_dir
    )
    pairs = [pipeline.to_inputs(ex, pipeline.TargetLayout(names)) for ex in examples]
    np.testing.assert_array_equal(np.concatenate([x.numpy() for x, _ in test]), np.stack([x for x, _ in pairs]))
    np.testing.assert_array_equal(np.concatenate(first), np.stack([t for _, t in pairs]))


def test_make_dataset_class_names_reorder(data_dir):
    ds = pipeline.make_dataset(
        "synthetic/tiny",
        "validation",
        image_size=32,
        data_dir=data_dir,
        class_names=["motorcycle", "car", "pedestrian"],
        cache=False,
    )
    default = pipeline.make_dataset("synthetic/tiny", "validation", image_size=32, data_dir=data_dir, cache=False)
    a = np.concatenate([t.numpy() for _, t in ds])
    b = np.concatenate([t.numpy() for _, t in default])
    assert ds.class_names == ("motorcycle", "car", "pedestrian")
    np.testing.assert_array_equal(a[:, 5:], b[:, 5:][:, ::-1])


def test_make_dataset_class_subset_turns_others_into_background(data_dir):
    kwargs = dict(image_size=32, data_dir=data_dir, cache=False)
    with pytest.raises(DataError, match="pedestrian"):
        pipeline.make_dataset("synthetic/tiny", "validation", class_names=["car"], **kwargs)
    cars = pipeline.make_dataset(
        "synthetic/tiny", "validation", class_names=["car"], unknown="ignore_object", skip_bad=False, **kwargs
    )
    full = pipeline.make_dataset("synthetic/tiny", "validation", **kwargs)
    a = np.concatenate([t.numpy() for _, t in cars])
    b = np.concatenate([t.numpy() for _, t in full])
    assert cars.class_names == ("car",) and a.shape[1] == 6
    np.testing.assert_array_equal(a[:, 0], b[:, 6])  # present exactly where a car is


@pytest.fixture
def csv_source(tmp_path):
    rng = np.random.default_rng(1)
    rows = []
    for i in range(6):
        h, w = 40 + 10 * i, 80 - 5 * i
        pixels = rng.integers(0, 80, (h, w, 3), dtype=np.uint8)
        pixels[5:25, 10:30] = 250
        name = f"img{i}.{'png' if i % 2 else 'jpg'}"
        Image.fromarray(pixels).save(tmp_path / name)
        rows.append(f"{name},10,5,30,25,{'car' if i % 3 else 'pedestrian'}")
    Image.fromarray(rng.integers(0, 80, (30, 30), dtype=np.uint8)).save(tmp_path / "bg.png")
    rows.append("bg.png,,,,,")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    return tmp_path


def test_make_dataset_from_csv_records(csv_source):
    ds = pipeline.make_dataset(
        f"csv:{csv_source / 'labels.csv'}",
        "train",
        image_size=40,
        batch_size=4,
        splits=(1.0, 0.0, 0.0),
        augment=False,
        resize="letterbox",
    )
    assert set(ds.class_names) == {"car", "pedestrian"}
    assert _check_batches(ds, 40, 2) == 7


def test_truncated_file_in_a_source_fails_naming_it(csv_source):
    data = (csv_source / "img0.jpg").read_bytes()
    spec = f"csv:{csv_source / 'labels.csv'}"
    ds = pipeline.make_dataset(spec, "train", image_size=40, splits=(1.0, 0.0, 0.0))
    (csv_source / "img0.jpg").write_bytes(data[: len(data) // 2])
    # Cut after the source was read: the pipeline's own check names it.
    with pytest.raises(tf.errors.InvalidArgumentError, match="img0.jpg"):
        for _ in ds:
            pass
    # Read afterwards: the source's check finds it before any pipeline runs.
    with pytest.raises(DataError, match=r"labels\.csv:1: image file .*img0\.jpg: JPEG image is truncated"):
        pipeline.make_dataset(spec, "train", image_size=40, splits=(1.0, 0.0, 0.0))


def test_records_dataset_rejects_empty_split():
    with pytest.raises(DataError, match="no images"):
        pipeline.records_dataset([], where="csv:x (test)")
    ds = pipeline.records_dataset(
        [Record.background("a.png"), Record("b.png", True, np.array([0.5, 0.5, 0.2, 0.2]), 1)]
    )
    rows = list(ds.as_numpy_iterator())
    assert [bool(r[PRESENT]) for r in rows] == [False, True] and rows[1][CLASS_ID] == 1


def test_caltech_photos_batch(caltech_dir):
    ds = pipeline.make_dataset(
        f"csv:{caltech_dir}", "validation", image_size=96, batch_size=8, skip_bad=True, cache=False
    )
    assert ds.class_names == ("airplane", "face", "motorcycle")
    _check_batches(ds.take(2), 96, 3)
