"""images.py: the TF-free reader (EXIF orientation everywhere) and the bit-exact numpy resize."""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from locnet_tf.core import errors
from locnet_tf.core import image_files as images

from locnet_tf.core import resize as resize_lib
from locnet_tf.data import decode as decode_lib
from locnet_tf.data import pipeline
from locnet_tf.data import checks as checks_lib
from locnet_tf.core.records import IMAGE

# ----------------------------------------------------------------------------
# Resize: bit for bit the pipeline's.


@pytest.mark.parametrize("seed", range(4))
def test_resize_is_the_pipeline_resize_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    cases = [((720, 1280), 128), ((37, 53), 64), ((50, 40), 128), ((64, 64), 64), ((1, 300), 32)]
    cases += [
        ((int(rng.integers(2, 500)), int(rng.integers(2, 500))), int(rng.choice([32, 96, 128]))) for _ in range(6)
    ]
    for (h, w), size in cases:
        # Smooth content (as photos are) and noise: both must match exactly.
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        if seed % 2:
            image = np.asarray(Image.fromarray(image).resize((w, h), Image.BILINEAR, box=(0, 0, w / 8, h / 8)))
        for method in ("stretch", "letterbox"):
            expected = pipeline.resize(
                {"image": image, "box": np.zeros(4, np.float32), "present": False}, size, method
            )["image"].numpy()
            got = resize_lib.resize(image, size, method)
            assert got.dtype == np.uint8 and got.shape == expected.shape
            assert np.array_equal(got, expected), f"{h}x{w} -> {size} {method}: {(got != expected).sum()} pixels differ"


def test_resize_rejects_an_unknown_method():
    with pytest.raises(ValueError, match="stretch' or 'letterbox"):
        resize_lib.resize(np.zeros((4, 4, 3), np.uint8), 8, "crop")


# ----------------------------------------------------------------------------
# EXIF orientation.

# Orientation -> the transpose that stores an upright picture so that a viewer,
# applying the tag, shows it upright again (the inverse of the viewer's turn).
_STORE = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}


def _upright(height=48, width=80):
    """A picture whose answer is known: a red square top-left, a blue bar bottom-right."""
    pixels = np.full((height, width, 3), 200, np.uint8)
    pixels[4:20, 4:20] = (255, 0, 0)
    pixels[height - 12 : height - 4, width - 40 : width - 4] = (0, 0, 255)
    return pixels


def _stored_jpeg(path, pixels, orientation):
    stored = (
        Image.fromarray(pixels).transpose(_STORE[orientation]) if orientation in _STORE else Image.fromarray(pixels)
    )
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
    _assert_upright(decode_lib.read_image(str(path)).numpy(), pixels)
    # Inside tf.data (graph mode), as training reads.
    decoded = next(iter(tf.data.Dataset.from_tensor_slices({"path": [str(path)]}).map(decode_lib.decode)))
    _assert_upright(decoded["image"].numpy(), pixels)
    # The two readers decode the same pixels.
    np.testing.assert_array_equal(images.read_image(path), decode_lib.read_image(str(path)).numpy())
    # The source readers' size check reports the displayed size.
    assert checks_lib.check_image(path, "test") == pixels.shape[:2]


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
        np.testing.assert_array_equal(decode_lib.read_image(str(path)).numpy(), expected)


def test_boxes_are_taken_in_the_displayed_orientation(tmp_path):
    # Displayed 80 wide x 48 tall (stored 48 x 80, orientation 6). The red
    # square's box, written as a viewer shows the photo, is inside the image
    # only in the displayed orientation (x2 = 20 fits either way; the blue bar's
    # x2 = 76 only fits the displayed width).
    pixels = _upright()
    _stored_jpeg(tmp_path / "turned.jpg", pixels, 6)
    (tmp_path / "labels.csv").write_text("turned.jpg,40,36,76,44,car\n")
    dataset = pipeline.make_dataset(
        f"csv:{tmp_path / 'labels.csv'}",
        "train",
        image_size=80,
        batch_size=1,
        augment=False,
        resize="letterbox",
        splits=(1.0, 0.0, 0.0),
    )
    image, target = next(iter(dataset))
    image, target = image.numpy()[0].astype(np.uint8), target.numpy()[0]
    # Letterboxed 48x80 -> 80x80: 16 rows of padding on top; the bar is at rows 52..60, columns 40..76.
    cx, cy, h, w = target[1:5] * 80
    np.testing.assert_allclose([cx, cy, h, w], [58, 16 + 40, 8, 36], atol=1e-4)
    bar = image[int(cy - h / 2) + 1 : int(cy + h / 2) - 1, int(cx - w / 2) + 1 : int(cx + w / 2) - 1]
    assert bar[..., 2].min() > 180 and bar[..., 0].max() < 80  # the box holds the blue bar


def test_reader_errors_name_the_file(tmp_path):
    from locnet_tf.core.errors import DataError

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
    from locnet_tf.core import figures as plots
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


# ----------------------------------------------------------------------------
# What is decoded when (review of issues 21/22: a huge PNG, EXIF of PNGs).


@pytest.fixture
def pixel_loads(monkeypatch):
    """Records every image Pillow decodes (`ImageFile.load`), by its size."""
    from PIL import ImageFile

    loads = []
    real = ImageFile.ImageFile.load

    def load(self):
        loads.append(self.size)
        return real(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    return loads


def test_a_huge_png_is_refused_before_a_pixel_is_decoded(tmp_path, pixel_loads):
    # 20000 x 20000 pixels: 60 kB on disk, 400 MB decoded as grey levels.
    buffer = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buffer, "PNG")
    data = buffer.getvalue()
    pixel_loads.clear()
    with pytest.raises(errors.ImageError, match=r"big\.png: image is too large: 20000x20000 pixels"):
        images.inspect(data, "big.png")
    (tmp_path / "big.png").write_bytes(data)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"(?s)image is too large.*big\.png"):
        decode_lib.read_image(str(tmp_path / "big.png"))
    assert pixel_loads == []


def _png_with_exif(orientation, pixels, exif_after_data=False):
    """PNG bytes with an eXIf chunk before the image data (as Pillow writes it) or after it."""
    exif = Image.Exif()
    exif[images.ORIENTATION_TAG] = orientation
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG", exif=exif.tobytes())
    data = buffer.getvalue()
    if not exif_after_data:
        return data
    chunks, offset = [], 8
    while offset < len(data):
        length = int.from_bytes(data[offset : offset + 4], "big")
        chunks.append(data[offset : offset + 12 + length])
        offset += 12 + length
    exif_chunk = next(c for c in chunks if c[4:8] == b"eXIf")
    chunks.remove(exif_chunk)
    chunks.insert(len(chunks) - 1, exif_chunk)  # just before IEND
    return data[:8] + b"".join(chunks)


def test_the_orientation_of_a_png_is_read_without_decoding_it(tmp_path, pixel_loads):
    pixels = _upright()
    for after in (False, True):
        data = _png_with_exif(6, pixels, exif_after_data=after)
        path = tmp_path / f"turned{int(after)}.png"
        path.write_bytes(data)
        with Image.open(path) as opened:
            assert opened.getexif()[images.ORIENTATION_TAG] == 6  # Pillow finds it too (decoding the image)
        pixel_loads.clear()
        info = images.inspect(data, path.name, verify=False)
        assert (info.orientation, info.height, info.width) == (6, 80, 48)
        assert images.exif_orientation(data) == images.exif_orientation(path) == 6
        assert pixel_loads == []  # the header alone
        # Both readers turn it, to the same pixels (pipeline: Pillow in a py_function, from the header).
        upright = images.read_image(path)
        np.testing.assert_array_equal(upright, np.rot90(pixels, -1))
        np.testing.assert_array_equal(decode_lib.read_image(str(path)).numpy(), upright)


def _png(pixels, color_type, bit_depth, palette=None):
    """PNG bytes of `pixels` (uint8 or uint16 samples) in any color type and bit depth (no filtering)."""
    import struct
    import zlib

    pixels = np.asarray(pixels)
    height, width = pixels.shape[:2]
    rows = []
    for row in pixels.reshape(height, width, -1):
        if bit_depth == 16:
            raw = row.astype(">u2").tobytes()
        elif bit_depth == 8:
            raw = row.astype(np.uint8).tobytes()
        else:  # 1, 2, 4 bits: packed, most significant first
            raw = np.packbits(
                np.unpackbits(row.astype(np.uint8)[:, 0:1], axis=1)[:, 8 - bit_depth :].reshape(-1)
            ).tobytes()
        rows.append(b"\0" + raw)

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    out = images.PNG_SIGNATURE + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0))
    if palette is not None:
        out += chunk(b"PLTE", np.asarray(palette, np.uint8).tobytes())
    return out + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b"")


def test_every_png_kind_reads_as_training_reads_it_bit_for_bit(tmp_path):
    rng = np.random.default_rng(5)
    h, w = 9, 13
    wide = rng.integers(0, 65536, (h, w, 4)).astype(np.uint16)
    wide[0, :4, 0] = (0, 255, 256, 65535)  # the values a saturating conversion gets wrong
    narrow = rng.integers(0, 256, (h, w, 4)).astype(np.uint8)
    cases = {
        "grey16": (wide[..., :1], 0, 16),
        "grey8": (narrow[..., :1], 0, 8),
        "grey4": (narrow[..., :1] % 16, 0, 4),
        "grey2": (narrow[..., :1] % 4, 0, 2),
        "grey1": (narrow[..., :1] % 2, 0, 1),
        "grey_alpha16": (wide[..., :2], 4, 16),
        "grey_alpha8": (narrow[..., :2], 4, 8),
        "rgb16": (wide[..., :3], 2, 16),
        "rgb8": (narrow[..., :3], 2, 8),
        "rgba16": (wide, 6, 16),
        "rgba8": (narrow, 6, 8),
        "palette8": (narrow[..., :1], 3, 8),
    }
    palette = rng.integers(0, 256, (256, 3))
    for name, (pixels, color_type, depth) in cases.items():
        path = tmp_path / f"{name}.png"
        path.write_bytes(_png(pixels, color_type, depth, palette if color_type == 3 else None))
        ours = images.read_image(path)
        theirs = decode_lib.read_image(str(path)).numpy()
        assert ours.shape == (h, w, 3) and ours.dtype == np.uint8
        assert np.array_equal(ours, theirs), (
            f"{name}: {(ours != theirs).sum()} values differ, at most by {np.abs(ours.astype(int) - theirs).max()}"
        )
    # 16 bits: the high byte of each sample (TF's libpng strips the low one).
    grey = images.read_image(tmp_path / "grey16.png")
    np.testing.assert_array_equal(grey[..., 0], wide[..., 0] >> 8)
    assert list(grey[0, :4, 0]) == [0, 0, 1, 255]


# ----------------------------------------------------------------------------
# Files that decode fine although they are not what a strict reading expects.


def _photo_jpeg(quality=90, exif=None, progressive=False, size=(120, 160)):
    rng = np.random.default_rng(1)
    small = rng.integers(0, 256, (size[0] // 8, size[1] // 8, 3), dtype=np.uint8)
    picture = Image.fromarray(small).resize((size[1], size[0]), Image.BILINEAR)
    buffer = io.BytesIO()
    kwargs = {"exif": exif} if exif else {}
    picture.save(buffer, "JPEG", quality=quality, progressive=progressive, **kwargs)
    return buffer.getvalue()


def _with_thumbnail(jpeg):
    """A JPEG with an APP1 segment holding a whole JPEG (its own SOS and EOI), as a phone's EXIF thumbnail."""
    thumbnail = _photo_jpeg(quality=40, size=(24, 32))
    body = b"Exif\0\0" + bytes(12) + thumbnail
    return jpeg[:2] + b"\xff\xe1" + (len(body) + 2).to_bytes(2, "big") + body + jpeg[2:]


def _same_everywhere(tmp_path, name, data):
    """Every reader accepts `data` and decodes the same pixels as Pillow; returns them."""
    path = tmp_path / name
    path.write_bytes(data)
    for verify in (False, True):
        images.inspect(data, name, verify=verify)
    with Image.open(io.BytesIO(data)) as opened:
        expected = np.asarray(opened.convert("RGB"))
    np.testing.assert_array_equal(images.read_image(path), expected)
    np.testing.assert_array_equal(decode_lib.read_image(str(path)).numpy(), expected)
    # As training reads it: a source's records, then the pipeline's reader with what they carry.
    (tmp_path / f"{name}.csv").write_text(f"{name},1,1,20,20,car\n")
    dataset, _ = pipeline.examples(f"csv:{tmp_path / (name + '.csv')}", "train", splits=(1.0, 0.0, 0.0))
    np.testing.assert_array_equal(next(iter(dataset))[IMAGE].numpy(), expected)
    return expected


def test_data_after_the_end_marker_is_ignored_as_decoders_ignore_it(tmp_path):
    rng = np.random.default_rng(2)
    jpeg = _photo_jpeg()
    # A motion photo's video after the picture: random bytes, with SOS markers and no EOI after the last.
    video = bytearray(rng.integers(0, 256, 20000, dtype=np.uint8).tobytes().replace(b"\xff\xd9", b"\xff\x00"))
    video[5000:5002] = b"\xff\xda"
    for name, data in {
        "motion.jpg": jpeg + bytes(video),
        "samsung.jpg": jpeg + b"SEFH" + bytes(300) + b"SEFT",
        "thumbnail_trailer.jpg": _with_thumbnail(jpeg) + bytes(video),
        "progressive_trailer.jpg": _photo_jpeg(progressive=True) + bytes(video),
    }.items():
        assert images.check_bytes(data) is None, name
        _same_everywhere(tmp_path, name, data)
    buffer = io.BytesIO()
    Image.fromarray(_upright()).save(buffer, "PNG")
    _same_everywhere(tmp_path, "trailer.png", buffer.getvalue() + b"tool data" + bytes(video[:3000]))


def test_a_jpeg_cut_short_is_truncated_whatever_its_thumbnail_says(tmp_path):
    data = _with_thumbnail(_photo_jpeg(quality=95))
    sos = data.rfind(b"\xff\xda")
    for cut in (30, len(data) - 200, sos + 40, len(data) - 2):  # in the thumbnail, in the image data, before EOI
        for verify in (False, True):
            with pytest.raises(errors.ImageError, match=r"cut\.jpg: JPEG image is truncated"):
                images.inspect(data[:cut], "cut.jpg", verify=verify)
        (tmp_path / "cut.jpg").write_bytes(data[:cut])
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"(?s)JPEG image is truncated.*cut\.jpg"):
            decode_lib.read_image(str(tmp_path / "cut.jpg"))


def test_stray_bytes_between_header_segments_are_harmless_but_not_in_the_image_data(tmp_path):
    jpeg = _photo_jpeg()
    sos = jpeg.find(b"\xff\xda")
    junk = jpeg[:sos] + b"\x00\x12\x34" + jpeg[sos:]  # "3 extraneous bytes before marker 0xda"
    _same_everywhere(tmp_path, "junk.jpg", junk)
    # Damaged image data stays refused (the strict decoder's first complaint).
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
    jpeg = buffer.getvalue()
    sos = jpeg.find(b"\xff\xda")
    middle = (sos + len(jpeg)) // 2
    damaged = jpeg[:middle] + bytes(b ^ 0x55 for b in jpeg[middle : middle + 16]) + jpeg[middle + 16 :]
    with pytest.raises(errors.ImageError, match=r"d\.jpg: JPEG data is corrupt: Corrupt JPEG data"):
        images.inspect(damaged, "d.jpg")
    with pytest.raises(errors.ImageError, match=r"dj\.jpg: JPEG data is corrupt"):
        images.inspect(damaged[:sos] + b"\x00\x12\x34" + damaged[sos:], "dj.jpg")


def test_a_multi_picture_jpeg_reads_as_its_first_picture(tmp_path):
    first = Image.fromarray(_upright())
    buffer = io.BytesIO()
    first.save(buffer, "MPO", save_all=True, append_images=[first.transpose(Image.Transpose.ROTATE_180)])
    data = buffer.getvalue()
    with Image.open(io.BytesIO(data)) as opened:
        assert opened.format == "MPO"  # what Pillow calls it: before, "a MPO image; locnet_tf reads only JPEG..."
    assert images.inspect(data, "mpo.jpg").format == "JPEG"
    _same_everywhere(tmp_path, "mpo.jpg", data)


# ----------------------------------------------------------------------------
# The training pipeline's reader with what the source readers found.


def _op_types(concrete):
    graph = concrete.graph
    found = {op.type for op in graph.get_operations()}
    for function in graph._functions.values():  # cond branches and other nested functions
        found |= {node.op for node in function.definition.node_def}
    return found


def test_file_sources_decode_with_no_python_call_per_image(tmp_path):
    pixels = _upright()
    _stored_jpeg(tmp_path / "turned.jpg", pixels, 8)
    Image.fromarray(pixels).save(tmp_path / "flat.png")
    (tmp_path / "labels.csv").write_text("turned.jpg,40,36,76,44,car\nflat.png,4,4,20,20,car\n")
    from locnet_tf.data import sources

    records = sources.load_source(f"csv:{tmp_path / 'labels.csv'}", splits=(1.0, 0.0, 0.0)).records["train"]
    assert sorted((r.orientation, r.file_size) for r in records) == sorted(
        [(8, (tmp_path / "turned.jpg").stat().st_size), (1, (tmp_path / "flat.png").stat().st_size)]
    )
    dataset = pipeline.records_dataset(records)
    decode = tf.function(decode_lib.decode).get_concrete_function(dataset.element_spec)
    assert not {"EagerPyFunc", "PyFunc", "PyFuncStateless"} & _op_types(decode)
    for example in dataset.map(decode_lib.decode):
        _assert_upright(example[IMAGE].numpy(), pixels)
    # The reader alone still reads the orientation itself (in a py_function).
    standalone = tf.function(decode_lib.read_image).get_concrete_function(tf.TensorSpec([], tf.string))
    assert "EagerPyFunc" in _op_types(standalone)


def test_a_file_changed_after_its_source_was_read_is_refused_naming_it(tmp_path):
    for name in ("a.jpg", "b.jpg"):
        Image.fromarray(_upright()).save(tmp_path / name, quality=90)
    (tmp_path / "labels.csv").write_text("a.jpg,4,4,20,20,car\nb.jpg,4,4,20,20,car\n")
    dataset, _ = pipeline.examples(f"csv:{tmp_path / 'labels.csv'}", "train", splits=(1.0, 0.0, 0.0))
    data = (tmp_path / "a.jpg").read_bytes()
    (tmp_path / "a.jpg").write_bytes(data[: len(data) // 2])  # cut
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"(?s)JPEG image is truncated.*a\.jpg"):
        list(dataset)
    (tmp_path / "a.jpg").write_bytes(data)
    Image.fromarray(_upright(96, 120)).save(tmp_path / "b.jpg", quality=90)  # another picture
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"(?s)changed since the source was read.*b\.jpg"):
        list(dataset)
