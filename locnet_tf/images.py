"""Images without TensorFlow: read a photo as a viewer shows it, resize it as training does.

Needs only numpy and Pillow, so `locnet_tf.runtime` runs on a device without
TensorFlow (DESIGN.md section 5):

    read_image(path)                -> uint8 RGB [H, W, 3], EXIF orientation applied
    inspect(data, name)             -> ImageInfo (format, size as displayed), or DataError
    exif_orientation(file)          -> the EXIF orientation tag (1..8; 1 = upright)
    oriented_size(path)             -> (height, width) as displayed, from the header only
    resize(image, size, method)     -> uint8 [S, S, 3], bit for bit the training pipeline's
    letterbox_geometry(h, w, s, s)  -> (new_h, new_w, top, left)
    boxes_to_original(box, h, w, size, method)

**Orientation.** Phones store a portrait photo as a landscape pixel array plus
an EXIF tag saying "rotate 90 degrees to show". Every reader in the package
(`read_image` here, the training pipeline's `locnet_tf.data.pipeline.read_image`,
the source readers' size checks, the check command) applies that tag, so
pixels, sizes and box annotations all mean the image as a viewer shows it.
The tag is read by Pillow (`Image.getexif`, `ImageOps.exif_transpose`) in both
places, so training and inference agree on what it says.

**Bad files.** Every reader checks an image the same way before it
decodes it (`inspect`; the source readers with `verify=True`, and
`read_image`): it must be a JPEG, PNG, GIF or BMP that TensorFlow's decoders
read right (not a palette BMP, which they would read as grey levels), complete
(a JPEG's end marker, a PNG's IEND chunk), at most `max_pixels()` pixels
(100 megapixels unless `LOCNET_TF_MAX_PIXELS` says otherwise: a 20000x20000
PNG of 5 MB on disk is 1.2 GB decoded, several times that while resized), and
it must decode without a complaint: libjpeg "recovers" a JPEG corrupted in its
middle with a warning on stderr that names no file (TensorFlow then trains on
the damaged pixels), so JPEGs are decoded by libjpeg-turbo in strict mode
(`simplejpeg`), where that warning is an error; PNG chunks must carry right
CRCs, which libpng (TensorFlow's decoder) enforces and Pillow does not. Each
problem is a `DataError` naming the file.

**Resize.** `resize` is TensorFlow's `tf.image.resize(..., antialias=True)`
(bilinear, the kernel widened when shrinking) followed by the pipeline's
rounding to uint8, re-done in numpy with TensorFlow's float32 arithmetic in
TensorFlow's order, so its output is bit-identical (tests/test_images.py
compares them). It is hand-written because no numpy or Pillow function is that
resize: Pillow's antialiased `BILINEAR` uses the same kernel but rounds to 8
bits between its two passes and differs by one grey level in about 10% of the
pixels (measured), and a model should see at inference exactly the pixels it
was evaluated on.
"""

import dataclasses
import functools
import io
import os
import struct
import threading
import zlib

import numpy as np
import simplejpeg
from PIL import Image, ImageOps, UnidentifiedImageError

from locnet_tf.data.records import DataError

# What `read_image` checks before decoding, as its errors word them (the
# training pipeline's reader uses the same words).
EMPTY_IMAGE = "image file is empty"
NOT_AN_IMAGE = "not a JPEG, PNG, GIF or BMP image"
TRUNCATED_JPEG = "JPEG image is truncated (no end-of-image marker)"
TRUNCATED_PNG = "PNG image is truncated (no IEND chunk)"
IMAGE_PROBLEMS = (EMPTY_IMAGE, NOT_AN_IMAGE, TRUNCATED_JPEG, TRUNCATED_PNG)

JPEG_SOI = b"\xff\xd8"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_END = b"IEND\xaeB`\x82"  # the IEND chunk type and its fixed CRC
GIF, BMP = b"GIF8", b"BM"
# Bytes searched for the JPEG end-of-image marker: some cameras and editors
# pad files after it.
JPEG_TAIL = 256
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp")
# Image files that are not read (TensorFlow's decoders do not take them). A
# folder of images that holds some is refused, or they are skipped and listed
# (`--skip-bad`), never left out unseen.
UNSUPPORTED_IMAGE_SUFFIXES = (
    ".webp", ".tif", ".tiff", ".heic", ".heif", ".avif", ".jxl", ".jp2", ".j2k", ".jpx",
    ".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".ico", ".psd", ".dng", ".cr2", ".nef", ".arw",
)
# What Pillow calls the formats every reader takes.
READABLE_FORMATS = ("JPEG", "PNG", "GIF", "BMP")

# The largest image, in pixels, that any reader decodes (check, training,
# evaluation, export, predict). 100 megapixels hold every camera's photo up to
# 100 MP (a 12 MP phone photo is 12) and decode to 300 MB of uint8 RGB; the
# training pipeline's resize works in float32, four times that. Larger files
# are almost always a mistake (a scan, a stitched panorama, a decompression
# bomb: a 20000x20000 PNG is 5 MB on disk and 1.2 GB decoded). The
# environment variable raises or lowers it.
DEFAULT_MAX_PIXELS = 100_000_000
MAX_PIXELS_ENV = "LOCNET_TF_MAX_PIXELS"

ORIENTATION_TAG = 0x0112  # EXIF "Orientation"
# Orientations that swap width and height (the 90-degree turns and transposes).
SWAPPING_ORIENTATIONS = (5, 6, 7, 8)


# ----------------------------------------------------------------------------
# Reading.


def max_pixels():
    """The pixel limit: `LOCNET_TF_MAX_PIXELS` when set (a number, e.g. 2e8), else 100 megapixels."""
    text = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(float(text))
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{MAX_PIXELS_ENV} must be a number of pixels of at least 1 (e.g. 200000000), got {text!r}.")
    return value


def too_large(width, height):
    """Why an image of `width` x `height` pixels is refused, or None when it is within `max_pixels()`."""
    limit = max_pixels()
    if width * height <= limit:
        return None
    return (
        f"image is too large: {width}x{height} pixels ({width * height / 1e6:.0f} megapixels, over the limit "
        f"of {limit / 1e6:g}; {MAX_PIXELS_ENV} changes it)"
    )


_OPEN_LOCK = threading.Lock()
# What Pillow raises for a file it cannot read (struct.error: a damaged header
# some plugins unpack without checking its length).
PILLOW_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, struct.error)


def open_image(source):
    """`PIL.Image.open` (lazy: reads the header only) without Pillow's decompression-bomb check.

    Pillow warns about images above its `MAX_IMAGE_PIXELS` and refuses those
    above twice that, naming no file; `too_large` is the package's one limit
    and names the file, so Pillow's is lifted while the header is read (under
    a lock: it is a module global).
    """
    with _OPEN_LOCK:
        pillow_limit = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            return Image.open(source)
        finally:
            Image.MAX_IMAGE_PIXELS = pillow_limit


class ImageError(DataError):
    """A bad image file: `name` (the file, as the caller named it) and `problem`."""

    def __init__(self, name, problem):
        super().__init__(f"{name}: {problem}")
        self.name, self.problem = name, problem


@dataclasses.dataclass(frozen=True)
class ImageInfo:
    """What `inspect` found: Pillow's format name and the size as displayed (EXIF orientation applied)."""

    format: str
    height: int
    width: int
    stored_height: int
    stored_width: int


def inspect(data, name, verify=True):
    """Checks an image file's bytes as every reader does before decoding them (see the module docstring).

    Args:
        data: bytes of the file.
        name: str. Names the file in messages (they read `f"{name}: {problem}"`).
        verify: bool. Also decode the whole image (finds corrupt data);
            otherwise only the header and the file's end are read.

    Returns:
        ImageInfo.

    Raises:
        ImageError (a DataError): empty, not an image, a format the decoders
            do not read right, truncated, too large, or (with `verify`) corrupt.
    """
    if not data:
        raise ImageError(name, EMPTY_IMAGE)
    try:
        with open_image(io.BytesIO(data)) as image:
            fmt = image.format
            stored_width, stored_height = image.size
            height, width = oriented_size(image)
            palette_bmp = fmt == "BMP" and image.mode not in ("RGB", "RGBA", "L")
    except PILLOW_ERRORS as error:
        raise ImageError(name, check_bytes(data) or f"cannot be read: {error}") from None
    if fmt not in READABLE_FORMATS:
        raise ImageError(name, f"a {fmt} image; locnet_tf reads only JPEG, PNG, GIF and BMP (convert it first)")
    if palette_bmp:
        # TensorFlow's BMP decoder takes 8-bit pixels as grey levels: a palette
        # BMP would train on its colour indices. (1- and 4-bit ones it refuses.)
        raise ImageError(name, "a BMP with a colour palette, which TensorFlow's decoder reads wrongly (convert it to PNG)")
    problem = too_large(stored_width, stored_height) or check_bytes(data)
    if not problem and verify:
        problem = _decode_problem(data, fmt)
    if problem:
        raise ImageError(name, problem)
    return ImageInfo(fmt, height, width, stored_height, stored_width)


def _decode_problem(data, fmt):
    """Why the image data does not decode cleanly, or None."""
    if fmt == "JPEG":
        return _jpeg_problem(data)
    if fmt == "PNG":
        problem = _png_chunk_problem(data)
        if problem:
            return problem
    try:
        with open_image(io.BytesIO(data)) as image:
            image.load()
    except PILLOW_ERRORS + (Image.DecompressionBombError,) as error:
        return f"cannot be decoded: {error}"
    return None


def _jpeg_problem(data):
    # libjpeg-turbo in strict mode: the warnings with which libjpeg (in
    # Pillow and TensorFlow alike) "recovers" damaged data are errors here.
    # Scaled down (min_factor 8): every coefficient is still decoded, the
    # output is 1/64 of the pixels.
    try:
        colorspace = simplejpeg.decode_jpeg_header(data)[2]
        simplejpeg.decode_jpeg(
            data, colorspace="CMYK" if colorspace in ("CMYK", "YCCK") else "GRAY" if colorspace == "Gray" else "RGB",
            min_height=1, min_width=1, min_factor=8,
        )
    except ValueError as error:
        return f"JPEG data is corrupt: {error}"
    return None


def _png_chunk_problem(data):
    """A PNG chunk whose CRC is wrong or that runs past the file's end, or None.

    Hand-written (a walk over length, type, data, CRC) because Pillow skips
    the CRCs of image-data chunks, which libpng, TensorFlow's PNG decoder,
    checks: a file Pillow decodes would stop training.
    """
    offset = len(PNG_SIGNATURE)
    while offset < len(data):
        if offset + 12 > len(data):
            return "PNG image is truncated (a chunk runs past the end of the file)"
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        end = offset + 8 + length
        if end + 4 > len(data):
            return f"PNG image is truncated (chunk {kind!r} runs past the end of the file)"
        (crc,) = struct.unpack(">I", data[end:end + 4])
        if zlib.crc32(data[offset + 4:end]) != crc:
            return f"PNG data is corrupt (chunk {kind.decode('latin-1')!r} has a wrong CRC)"
        offset = end + 4
        if kind == b"IEND":
            break
    return None


def check_bytes(data):
    """The problem with an image file's bytes (one of `IMAGE_PROBLEMS`), or None."""
    if not data:
        return EMPTY_IMAGE
    if data[:2] == JPEG_SOI:
        return None if b"\xff\xd9" in data[-JPEG_TAIL:] else TRUNCATED_JPEG
    if data[:8] == PNG_SIGNATURE:
        return None if data.endswith(PNG_END) else TRUNCATED_PNG
    if data[:4] == GIF or data[:2] == BMP:
        return None
    return NOT_AN_IMAGE


def exif_orientation(image):
    """The EXIF orientation of an image: 1 (upright) to 8; 1 when it has none.

    Args:
        image: a `PIL.Image.Image`, the bytes of an image file, or its path.
    """
    if isinstance(image, Image.Image):
        value = image.getexif().get(ORIENTATION_TAG, 1)
    else:
        source = io.BytesIO(image) if isinstance(image, (bytes, bytearray)) else image
        try:
            with open_image(source) as opened:  # the header only: no pixels are decoded
                value = opened.getexif().get(ORIENTATION_TAG, 1)
        except PILLOW_ERRORS:
            return 1  # not an image Pillow reads: the decoder reports it
    try:
        value = int(value)
    except (TypeError, ValueError):
        return 1
    # Pillow's exif_transpose ignores values outside 1..8; so do we.
    return value if 1 <= value <= 8 else 1


def oriented_size(image):
    """(height, width) of an opened `PIL.Image` as displayed (EXIF orientation applied)."""
    width, height = image.size
    if exif_orientation(image) in SWAPPING_ORIENTATIONS:
        width, height = height, width
    return height, width


def read_image(path):
    """Reads an image file to uint8 RGB `[H, W, 3]`, as a photo viewer shows it.

    JPEG, PNG, GIF (first frame) and BMP, as the training pipeline reads;
    grayscale, palette and RGBA become RGB; the EXIF orientation is applied.

    Raises:
        FileNotFoundError: no such file.
        DataError: the file is empty, truncated, corrupt, too large or not an
            image the training pipeline reads (`inspect`; the message names it).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such image file.")
    with open(path, "rb") as f:
        data = f.read()
    inspect(data, path)
    try:
        with open_image(io.BytesIO(data)) as image:
            image = ImageOps.exif_transpose(image)
            return np.asarray(image.convert("RGB"))
    except PILLOW_ERRORS as error:
        raise DataError(f"{path}: cannot be decoded: {error}.") from None


def to_rgb_uint8(image):
    """An array-like image as uint8 `[H, W, 3]` (rounded and clipped if it is float)."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"Expected an RGB image [H, W, 3], got shape {image.shape}.")
    if image.dtype != np.uint8:
        image = np.clip(np.round(image), 0, 255).astype(np.uint8)
    return image


# ----------------------------------------------------------------------------
# Resizing: TensorFlow's antialiased bilinear resize, bit for bit.

_F = np.float32


@functools.lru_cache(maxsize=64)
def _spans(output_size, input_size):
    """Start index and weights of each output pixel along one axis.

    TensorFlow's `ComputeSpansCore` (kernels/image/scale_and_translate_op.cc)
    for the triangle kernel with antialiasing and no translation, in its
    float32 arithmetic: scale = out / in, the kernel widened by in / out when
    shrinking, weights normalised to sum 1.

    Returns:
        (int64 `[out, span]` input indices, float32 `[out, span]` weights);
        indices past the edge are clamped and carry weight 0.
    """
    scale = _F(output_size) / _F(input_size)
    inv_scale = _F(1.0 / np.float64(scale))  # C++: float inv_scale = 1.0 / scale (in double)
    kernel_scale = max(inv_scale, _F(1.0))
    span = min(2 * int(np.ceil(kernel_scale)) + 1, int(input_size))
    one_over_kernel_scale = _F(1.0) / kernel_scale
    sample = (np.arange(output_size, dtype=_F) + _F(0.5)) * inv_scale
    start = np.ceil((sample - kernel_scale) - _F(0.5)).astype(np.int64)
    end = np.floor((sample + kernel_scale) - _F(0.5)).astype(np.int64)
    start = np.clip(start, 0, input_size - 1)
    end = np.clip(end, 0, input_size - 1) + 1
    offsets = np.arange(span)
    index = start[:, None] + offsets
    inside = index < end[:, None]
    position = (index.astype(_F) + _F(0.5)) - sample[:, None]
    distance = np.abs(position * one_over_kernel_scale)
    weights = np.where(inside & (distance < _F(1.0)), _F(1.0) - distance, _F(0.0)).astype(_F)
    total = np.zeros(output_size, _F)
    for k in range(span):  # summed in order, as the C++ loop does
        total = total + weights[:, k]
    weights = weights * (_F(1.0) / total)[:, None]
    return np.minimum(index, input_size - 1), weights


def _resize_float(image, height, width):
    """`tf.image.resize(image, (height, width), antialias=True)` (bilinear) as float32.

    Rows first, then columns, each output value accumulated over its span in
    order: TensorFlow's `GatherRows` / `GatherColumns`, so the sums round alike.
    """
    in_h, in_w, channels = image.shape
    row_index, row_weights = _spans(height, in_h)
    col_index, col_weights = _spans(width, in_w)
    flat = image.reshape(in_h, in_w * channels)
    rows = np.zeros((height, in_w * channels), _F)
    term = np.empty_like(rows)
    # In blocks of output rows, so the running sums stay in the CPU cache.
    block = 16
    for top in range(0, height, block):
        bottom = min(top + block, height)
        acc, tmp = rows[top:bottom], term[:bottom - top]
        for k in range(row_weights.shape[1]):
            weights = row_weights[top:bottom, k, None]
            if not weights.any():
                continue  # a tap past every span's end: adding 0 * x changes no sum
            tmp[...] = flat[row_index[top:bottom, k]]
            tmp *= weights
            acc += tmp
    # Columns: transpose once so each tap gathers whole rows.
    columns = np.ascontiguousarray(rows.reshape(height, in_w, channels).transpose(1, 0, 2))
    columns = columns.reshape(in_w, height * channels)
    out = np.zeros((width, height * channels), _F)
    term = np.empty_like(out)
    for k in range(col_weights.shape[1]):
        if not col_weights[:, k].any():
            continue
        np.take(columns, col_index[:, k], axis=0, out=term)
        term *= col_weights[:, k, None]
        out += term
    return out.reshape(width, height, channels).transpose(1, 0, 2)


def _to_uint8(values):
    # The pipeline's rounding: round half to even (tf.round), clip, cast.
    return np.clip(np.round(values), 0, 255).astype(np.uint8)


def letterbox_geometry(height, width, out_h, out_w):
    """Where a `height x width` image lands when letterboxed into `out_h x out_w`.

    `locnet_tf.data.pipeline.letterbox_geometry` in numpy (same float32 maths).

    Returns:
        ints `(new_h, new_w, top, left)`.
    """
    h, w = _F(height), _F(width)
    scale = min(_F(out_h) / h, _F(out_w) / w)
    new_h = int(np.clip(np.round(h * scale), 1, out_h))
    new_w = int(np.clip(np.round(w * scale), 1, out_w))
    return new_h, new_w, (out_h - new_h) // 2, (out_w - new_w) // 2


def resize(image, image_size, method="stretch", pad_value=0):
    """Resizes a uint8 `[H, W, 3]` image exactly as the training pipeline does.

    Args:
        image: uint8 array `[H, W, C]`.
        image_size: int or (height, width).
        method: `"stretch"` or `"letterbox"` (keep the aspect, centre, pad
            with `pad_value`).

    Returns:
        uint8 `[out_h, out_w, C]`, equal to
        `locnet_tf.data.pipeline.resize({"image": image, ...}, image_size, method)["image"]`.
    """
    out_h, out_w = (image_size, image_size) if np.isscalar(image_size) else image_size
    out_h, out_w = int(out_h), int(out_w)
    if method not in ("stretch", "letterbox"):
        raise ValueError(f"resize method must be 'stretch' or 'letterbox', got {method!r}.")
    image = np.asarray(image)
    height, width = image.shape[:2]
    if method == "stretch":
        new_h, new_w, top, left = out_h, out_w, 0, 0
    else:
        new_h, new_w, top, left = letterbox_geometry(height, width, out_h, out_w)
    if (new_h, new_w) == (height, width):
        resized = image.astype(np.uint8, copy=False)
    else:
        resized = _to_uint8(_resize_float(image, new_h, new_w))
    if method == "stretch":
        return resized
    out = np.full((out_h, out_w, image.shape[2]), pad_value, np.uint8)
    out[top:top + new_h, left:left + new_w] = resized
    return out


def boxes_to_original(box, height, width, image_size, method="stretch"):
    """Maps `[b_x, b_y, b_h, b_w]` boxes on the model input back to the original image.

    numpy twin of `locnet_tf.inference.boxes_to_original` (a no-op for stretch,
    where relative coordinates do not change; the exact undo of the padding
    for letterbox).
    """
    box = np.asarray(box, np.float32)
    if method == "stretch":
        return box
    new_h, new_w, top, left = letterbox_geometry(height, width, image_size, image_size)
    size = _F(image_size)
    cx, cy, bh, bw = (box[..., i] for i in range(4))
    return np.stack([
        (cx * size - _F(left)) / _F(new_w),
        (cy * size - _F(top)) / _F(new_h),
        bh * size / _F(new_h),
        bw * size / _F(new_w),
    ], axis=-1).astype(np.float32)


def target_to_corners(box):
    """`[b_x, b_y, b_h, b_w]` -> `[x1, y1, x2, y2]` (same units), in numpy.

    The numpy twin of `locnet_tf.boxes.target_to_corners`, which imports Keras;
    tests/test_images.py checks that they agree.
    """
    box = np.asarray(box, np.float32)
    cx, cy, bh, bw = (box[..., i] for i in range(4))
    return np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=-1)
