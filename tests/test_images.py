"""images.py: the TF-free reader (EXIF orientation everywhere) and the bit-exact numpy resize."""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from locnet_tf import boxes as box_lib
from locnet_tf import images
from locnet_tf import inference
from locnet_tf.data import pipeline, source_utils

# ----------------------------------------------------------------------------
# Resize: bit for bit the pipeline's.


@pytest.mark.parametrize("seed", range(4))
def test_resize_is_the_pipeline_resize_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    cases = [((720, 1280), 128), ((37, 53), 64), ((50, 40), 128), ((64, 64), 64), ((1, 300), 32)]
    cases += [((int(rng.integers(2, 500)), int(rng.integers(2, 500))), int(rng.choice([32, 96, 128])))
              for _ in range(6)]
    for (h, w), size in cases:
        # Smooth content (as photos are) and noise: both must match exactly.
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        if seed % 2:
            image = np.asarray(Image.fromarray(image).resize((w, h), Image.BILINEAR, box=(0, 0, w / 8, h / 8)))
        for method in ("stretch", "letterbox"):
            expected = pipeline.resize({"image": image, "box": np.zeros(4, np.float32), "present": False},
                                       size, method)["image"].numpy()
            got = images.resize(image, size, method)
            assert got.dtype == np.uint8 and got.shape == expected.shape
            assert np.array_equal(got, expected), f"{h}x{w} -> {size} {method}: {(got != expected).sum()} pixels differ"


def test_letterbox_geometry_and_box_mapping_match_the_tf_versions():
    for h, w, s in [(40, 80, 32), (480, 640, 128), (333, 77, 96), (64, 64, 64)]:
        assert images.letterbox_geometry(h, w, s, s) == tuple(int(v) for v in pipeline.letterbox_geometry(h, w, s, s))
        box = np.array([[0.3, 0.6, 0.2, 0.5], [0.5, 0.5, 1.0, 1.0]], np.float32)
        for method in ("stretch", "letterbox"):
            np.testing.assert_array_equal(images.boxes_to_original(box, h, w, s, method),
                                          inference.boxes_to_original(box, h, w, s, method).numpy())
    box = np.array([[0.5, 0.4, 0.2, 0.6]], np.float32)
    np.testing.assert_array_equal(images.target_to_corners(box),
                                  np.stack([np.asarray(v) for v in box_lib.target_to_corners(box)], -1))


def test_resize_rejects_an_unknown_method():
    with pytest.raises(ValueError, match="stretch' or 'letterbox"):
        images.resize(np.zeros((4, 4, 3), np.uint8), 8, "crop")


# ----------------------------------------------------------------------------
# EXIF orientation.

# Orientation -> the transpose that stores an upright picture so that a viewer,
# applying the tag, shows it upright again (the inverse of the viewer's turn).
_STORE = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}


def _upright(height=48, width=80):
    """A picture whose answer is known: a red square top-left, a blue bar bottom-right."""
    pixels = np.full((height, width, 3), 200, np.uint8)
    pixels[4:20, 4:20] = (255, 0, 0)
    pixels[height - 12:height - 4, width - 40:width - 4] = (0, 0, 255)
    return pixels


def _stored_jpeg(path, pixels, orientation):
    stored = Image.fromarray(pixels).transpose(_STORE[orientation]) if orientation in _STORE else Image.fromarray(pixels)
    exif = Image.Exif()
    exif[images.ORIENTATION_TAG] = orientation
    stored.save(path, "JPEG", quality=100, subsampling=0, exif=exif.tobytes())
    return stored.size  # (width, height) as stored


def _assert_upright(image, pixels):
    assert image.shape == pixels.shape
    # JPEG rounds colours a little; the layout is what matters.
    assert np.abs(image.astype(int) - pixels).mean() < 3
    assert image[10, 10, 0] > 200 and image[10, 10, 2] < 60  # the red square is top-left


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_every_reader_shows_a_jpeg_as_a_viewer_does(tmp_path, orientation):
    pixels = _upright()
    path = tmp_path / f"o{orientation}.jpg"
    stored_w, stored_h = _stored_jpeg(path, pixels, orientation)
    assert (stored_h, stored_w) != pixels.shape[:2] or orientation == 3  # 6 and 8 store it turned
    assert images.exif_orientation(path) == orientation
    _assert_upright(images.read_image(path), pixels)
    _assert_upright(pipeline.read_image(str(path)).numpy(), pixels)
    # Inside tf.data (graph mode), as training reads.
    decoded = next(iter(tf.data.Dataset.from_tensor_slices({"path": [str(path)]}).map(pipeline.decode)))
    _assert_upright(decoded["image"].numpy(), pixels)
    # The two readers decode the same pixels.
    np.testing.assert_array_equal(images.read_image(path), pipeline.read_image(str(path)).numpy())
    # The source readers' size check reports the displayed size.
    assert source_utils.check_image(path, "test") == pixels.shape[:2]


def test_every_orientation_matches_pillows_transpose(tmp_path):
    rng = np.random.default_rng(0)
    stored = rng.integers(0, 256, (30, 50, 3), dtype=np.uint8)
    for orientation in range(0, 10):  # 0 and 9: invalid tags are ignored, as Pillow does
        exif = Image.Exif()
        if orientation:
            exif[images.ORIENTATION_TAG] = orientation
        path = tmp_path / f"o{orientation}.png"  # lossless: pixels must match exactly
        Image.fromarray(stored).save(path, exif=exif.tobytes())
        with Image.open(path) as opened:
            from PIL import ImageOps

            expected = np.asarray(ImageOps.exif_transpose(opened).convert("RGB"))
        np.testing.assert_array_equal(images.read_image(path), expected)
        np.testing.assert_array_equal(pipeline.read_image(str(path)).numpy(), expected)


def test_boxes_are_taken_in_the_displayed_orientation(tmp_path):
    # Displayed 80 wide x 48 tall (stored 48 x 80, orientation 6). The red
    # square's box, written as a viewer shows the photo, is inside the image
    # only in the displayed orientation (x2 = 20 fits either way; the blue bar's
    # x2 = 76 only fits the displayed width).
    pixels = _upright()
    _stored_jpeg(tmp_path / "turned.jpg", pixels, 6)
    (tmp_path / "labels.csv").write_text("turned.jpg,40,36,76,44,car\n")
    dataset = pipeline.make_dataset(f"csv:{tmp_path / 'labels.csv'}", "train", image_size=80, batch_size=1,
                                    augment=False, resize="letterbox", splits=(1.0, 0.0, 0.0))
    image, target = next(iter(dataset))
    image, target = image.numpy()[0].astype(np.uint8), target.numpy()[0]
    # Letterboxed 48x80 -> 80x80: 16 rows of padding on top; the bar is at rows 52..60, columns 40..76.
    cx, cy, h, w = target[1:5] * 80
    np.testing.assert_allclose([cx, cy, h, w], [58, 16 + 40, 8, 36], atol=1e-4)
    bar = image[int(cy - h / 2) + 1:int(cy + h / 2) - 1, int(cx - w / 2) + 1:int(cx + w / 2) - 1]
    assert bar[..., 2].min() > 180 and bar[..., 0].max() < 80  # the box holds the blue bar


def test_reader_errors_name_the_file(tmp_path):
    from locnet_tf.data.records import DataError

    with pytest.raises(FileNotFoundError, match="nothere.jpg: no such image file"):
        images.read_image(tmp_path / "nothere.jpg")
    buffer = io.BytesIO()
    Image.fromarray(_upright()).save(buffer, "JPEG")
    (tmp_path / "half.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(DataError, match=r"half\.jpg: JPEG image is truncated"):
        images.read_image(tmp_path / "half.jpg")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.png: image file is empty"):
        images.read_image(tmp_path / "empty.png")


def test_the_check_command_reads_turned_photos_as_displayed(tmp_path, monkeypatch):
    from locnet_tf import plots
    from locnet_tf.data import check

    pixels = _upright()
    _stored_jpeg(tmp_path / "turned.jpg", pixels, 8)
    (tmp_path / "labels.csv").write_text("turned.jpg,40,36,76,44,car\n")
    drawn = {}

    def draw_grid(images_, boxes, *args, **kwargs):
        drawn.update(images=images_, boxes=boxes)
        return str(kwargs.get("path") or args[2])

    monkeypatch.setattr(plots, "draw_examples_grid", draw_grid)
    report = check.check(f"csv:{tmp_path / 'labels.csv'}", grid=tmp_path / "grid.png", print_fn=None)
    assert report["skipped"] == 0 and report["total"]["images"] == 1
    _assert_upright(drawn["images"][0], pixels)  # the grid shows the photo as displayed, under its box
    np.testing.assert_allclose(drawn["boxes"][0], [58 / 80, 40 / 48, 8 / 48, 36 / 80], atol=1e-6)
