"""Image files without TensorFlow: read a photo as a viewer shows it, check it, decode it.

Needs only numpy, Pillow and simplejpeg, so `locnet_tf.runtime` runs on a device without
TensorFlow (DESIGN.md section 5):

    read_image(path)                -> uint8 RGB [H, W, 3], EXIF orientation applied
    decode_image(data, name)        -> the same from a file's bytes (an upload)
    inspect(data, name)             -> ImageInfo (format, size as displayed), or DataError
    exif_orientation(file)          -> the EXIF orientation tag (1..8; 1 = upright)

(The resize: `locnet_tf.core.resize`; the letterbox's placement and the boxes' way in and out
of it: `locnet_tf.core.geometry`.)

**Orientation.** Phones store a portrait photo as a landscape pixel array plus
an EXIF tag saying "rotate 90 degrees to show". Every reader in the package
(`read_image` here, the training pipeline's `locnet_tf.data.decode.read_image`,
the source readers' size checks, the check command) applies that tag, so
pixels, sizes and box annotations all mean the image as a viewer shows it.
The tag is read once, from the header (`inspect`, through Pillow's EXIF
parser; a PNG is never decoded for it), and the source readers hand it to the
training pipeline with each record, so training and inference agree on what
it says.

**Bad files.** Every reader checks an image the same way before it
decodes it (`inspect`; the source readers with `verify=True`, and
`read_image`): it must be a JPEG, PNG, GIF or BMP that TensorFlow's decoders
read right (not a palette BMP, which they would read as grey levels), at most
`max_pixels()` pixels (100 megapixels unless `LOCNET_TF_MAX_PIXELS` says
otherwise: a 20000x20000 PNG of 5 MB on disk is 1.2 GB decoded, several times
that while resized; checked from the header, before anything is decoded),
complete (a JPEG's end marker after its image data, a PNG's IEND chunk; data
appended after them, as phones append a motion photo's video, is ignored as
every decoder ignores it), and it must decode without a complaint: libjpeg
"recovers" a JPEG corrupted in its middle with a warning on stderr that names
no file (TensorFlow then trains on the damaged pixels), so JPEGs are decoded
by libjpeg-turbo in strict mode (`simplejpeg`), where that warning is an error
(except for stray bytes between header segments, which libjpeg skips without
harm); PNG chunks must carry right CRCs, which libpng (TensorFlow's decoder)
enforces and Pillow checks in `Image.verify()` (its `load()` does not). Each
problem is a `DataError` naming the file. The checks are the libraries' where
a library makes them (Pillow's header parse and `verify()`, strict
libjpeg-turbo); the few bytes they cannot judge are walked here, each place
saying why (`_png_problem`, `jpeg_is_complete`, `_jpeg_header`).
"""

import dataclasses
import io
import os
import struct
import threading

import numpy as np
import simplejpeg
from PIL import Image, UnidentifiedImageError

from locnet_tf.core.errors import DataError, ImageError

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
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp")
# Image files that are not read (TensorFlow's decoders do not take them). A
# folder of images that holds some is refused, or they are skipped and listed
# (`--skip-bad`), never left out unseen.
UNSUPPORTED_IMAGE_SUFFIXES = (
    ".webp",
    ".tif",
    ".tiff",
    ".heic",
    ".heif",
    ".avif",
    ".jxl",
    ".jp2",
    ".j2k",
    ".jpx",
    ".ppm",
    ".pgm",
    ".pbm",
    ".pnm",
    ".tga",
    ".ico",
    ".psd",
    ".dng",
    ".cr2",
    ".nef",
    ".arw",
)
# What Pillow calls the formats every reader takes.
READABLE_FORMATS = ("JPEG", "PNG", "GIF", "BMP")
# Pillow's names for files that are one of those: "MPO" is a JPEG that holds
# more pictures after the first (a phone's depth map, a stereo pair), which
# every decoder reads as its first picture.
_FORMAT_ALIASES = {"MPO": "JPEG"}

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


@dataclasses.dataclass(frozen=True)
class ImageInfo:
    """What `inspect` found: the format, the size as displayed (EXIF orientation applied) and as stored, the
    orientation, the file's size in bytes."""

    format: str
    height: int
    width: int
    stored_height: int
    stored_width: int
    orientation: int = 1  # EXIF orientation, 1..8 (1: stored upright)
    file_size: int = 0  # bytes


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
    return _inspect(data, name, verify)[0]


def _inspect(data, name, verify):
    """`inspect`, and with `verify` the decoded `PIL.Image` of a PNG, GIF or BMP (None for a JPEG, or without
    `verify`): the check's decode is the reader's (`decode_image`), so such a file is decoded once."""
    if not data:
        raise ImageError(name, EMPTY_IMAGE)
    try:
        with open_image(io.BytesIO(data)) as image:  # the header only
            fmt = _FORMAT_ALIASES.get(image.format, image.format)
            stored_width, stored_height = image.size
            if fmt not in READABLE_FORMATS:
                raise ImageError(name, f"a {fmt} image; locnet_tf reads only JPEG, PNG, GIF and BMP (convert it first)")
            if fmt == "BMP" and image.mode not in ("RGB", "RGBA", "L"):
                # TensorFlow's BMP decoder takes 8-bit pixels as grey levels: a palette
                # BMP would train on its colour indices. (1- and 4-bit ones it refuses.)
                raise ImageError(
                    name, "a BMP with a colour palette, which TensorFlow's decoder reads wrongly (convert it to PNG)"
                )
            # The size before anything else is read: a 400-megapixel PNG is
            # refused before a byte of its pixels is decoded.
            problem = too_large(stored_width, stored_height) or check_bytes(data)
            if problem:
                raise ImageError(name, problem)
            orientation = _orientation(image, data)
    except ImageError:
        raise
    except PILLOW_ERRORS as error:
        # Pillow's words for a header it cannot parse name a BytesIO object and its address.
        detail = "its header is damaged" if isinstance(error, UnidentifiedImageError) else error
        raise ImageError(name, check_bytes(data) or f"cannot be read: {detail}") from None
    decoded = None
    if verify:
        problem, decoded = _decode(data, fmt)
        if problem:
            raise ImageError(name, problem)
    height, width = (
        (stored_width, stored_height) if orientation in SWAPPING_ORIENTATIONS else (stored_height, stored_width)
    )
    return ImageInfo(fmt, height, width, stored_height, stored_width, orientation, len(data)), decoded


def _decode(data, fmt):
    """`(why the image data does not decode cleanly, or None; the decoded PIL.Image of a PNG, GIF or BMP)`.

    A JPEG is decoded by strict libjpeg-turbo (`_jpeg_problem`), at 1/64 of
    its pixels; the other formats by Pillow, whose loaded image `decode_image`
    then converts (Pillow's pixels are the ones TensorFlow's decoders give).
    """
    if fmt == "JPEG":
        return _jpeg_problem(data), None
    if fmt == "PNG":
        problem = _png_problem(data)
        if problem:
            return problem, None
    try:
        image = open_image(io.BytesIO(data))
        image.load()
    except PILLOW_ERRORS + (Image.DecompressionBombError,) as error:
        return f"cannot be decoded: {error}", None
    return None, image


def _jpeg_problem(data):
    # libjpeg-turbo in strict mode: the warnings with which libjpeg (in
    # Pillow and TensorFlow alike) "recovers" damaged data are errors here.
    # Scaled down (min_factor 8): every coefficient is still decoded, the
    # output is 1/64 of the pixels.
    problem = _strict_jpeg_decode(data)
    if problem and EXTRANEOUS_BYTES in problem:
        # Bytes between two header segments (a segment length one short, an
        # editor's padding) that libjpeg skips: Pillow and TensorFlow decode
        # the same pixels as without them. Strict mode stops at that warning,
        # so the rest is checked on a copy without them. Such bytes in the
        # image data itself stay an error: they are damaged data.
        junk = _jpeg_header(data)[1]
        if junk:
            cleaned = bytearray(data)
            for start, end in reversed(junk):
                del cleaned[start:end]
            problem = _strict_jpeg_decode(bytes(cleaned))
    return f"JPEG data is corrupt: {problem}" if problem else None


# What libjpeg says of bytes it skips between segments (its JWRN_EXTRANEOUS_DATA).
EXTRANEOUS_BYTES = "extraneous bytes before marker"


def _strict_jpeg_decode(data):
    """simplejpeg's (strict libjpeg-turbo's) complaint about a JPEG, or None when it decodes cleanly."""
    try:
        colorspace = simplejpeg.decode_jpeg_header(data)[2]
        simplejpeg.decode_jpeg(
            data,
            colorspace="CMYK" if colorspace in ("CMYK", "YCCK") else "GRAY" if colorspace == "Gray" else "RGB",
            min_height=1,
            min_width=1,
            min_factor=8,
        )
    except ValueError as error:
        return str(error)
    return None


def _png_problem(data):
    """A PNG chunk whose CRC is wrong or that runs past the file's end, or None.

    libpng, TensorFlow's PNG decoder, checks the CRC of every chunk it reads;
    Pillow checks those before the image data when it opens a file, and the
    others only in `Image.verify()` (its `load()` skips the CRCs of the
    image-data chunks: a file Pillow decodes would stop training). So
    `verify()` walks the chunks, from the first IDAT, up to IEND. What it does
    not check stays here: IEND itself (Pillow stops on its type and reads
    neither its length nor its CRC; libpng reads both), which must be the
    empty chunk with the fixed CRC (`PNG_END`). `verify()` leaves the buffer
    just after the type of the IEND it stopped on (a Pillow detail: were it
    to change, every PNG would be refused here, which tests/test_images.py
    shows at once). Bytes after IEND are not read (by libpng either).

    Pillow skips the CRCs of ancillary chunks (text, EXIF, ...) while the
    process-wide `PIL.ImageFile.LOAD_TRUNCATED_IMAGES` is set, which this
    package never does (libpng, too, only warns about those).
    """
    buffer = io.BytesIO(data)
    try:
        with open_image(buffer) as image:
            image.verify()
    except SyntaxError as error:  # a CRC that does not match, a chunk type that is no chunk type
        return f"PNG data is corrupt: {error}"
    except PILLOW_ERRORS:  # a chunk's data or CRC runs past the end of the file ("Truncated File Read")
        return "PNG image is truncated (a chunk runs past the end of the file)"
    end = buffer.tell()
    if data[end - 8 : end + 4] != bytes(4) + PNG_END:
        return "PNG data is corrupt (its IEND chunk is not empty or has a wrong CRC)"
    return None


def _png_exif(data):
    """The data of a PNG's eXIf chunk (wherever it is, also after the image data), or None."""
    offset, size = len(PNG_SIGNATURE), len(data)
    while offset + 8 <= size:  # a walk over the chunk headers: a few per megabyte
        length, kind = struct.unpack_from(">I4s", data, offset)
        if kind == b"eXIf":
            return data[offset + 8 : offset + 8 + length] if offset + 12 + length <= size else None
        if kind == b"IEND":
            return None
        offset += 12 + length
    return None


# ----------------------------------------------------------------------------
# The JPEG header walk: what no library tells.
#
# Two checks need where a JPEG's first scan starts and what lies between its
# header segments, which neither library reports: Pillow parses the header to
# the first scan but keeps no offset (its tile starts at 0: libjpeg reads the
# file from the start) and skips stray bytes silently; libjpeg-turbo
# (simplejpeg's `decode_jpeg_header`) stops at the scan and returns only sizes
# and colour spaces, and in strict mode names stray bytes by count and marker
# ("3 extraneous bytes before marker 0xda"), not position.
# - Completeness from the bytes alone (`jpeg_is_complete`): a cut JPEG is
#   found by a library only by decoding it all (simplejpeg: "Premature end of
#   JPEG file"; Pillow: "image file is truncated", or nothing at all while the
#   process-wide `ImageFile.LOAD_TRUNCATED_IMAGES` is set), but the
#   header-only checks (`inspect(verify=False)`, the training pipeline's
#   reader, a source read without verifying) decode nothing, and the end
#   marker cannot just be looked for at the file's end: phones append data
#   after it.
# - Stray bytes between header segments (`_jpeg_header`'s second result),
#   which libjpeg skips with a warning and the same pixels: strict mode stops
#   there, so they are cut out by position before the strict decode goes on.

# JPEG markers without a length field (TEM, RST0..7; SOI and EOI end the walk).
_STANDALONE_MARKERS = frozenset([0x01, *range(0xD0, 0xD8)])
_SOI, _SOS, _EOI = 0xD8, 0xDA, 0xD9


def _jpeg_next_marker(data, start):
    """libjpeg's `next_marker` from `start`: `(offset of the marker's 0xFF, offset of its code)`, or None.

    Bytes before it that are not fill bytes (0xFF runs) are what libjpeg
    skips with its "extraneous bytes" warning: `data[start:offset]`.
    """
    position = start
    while True:
        position = data.find(b"\xff", position)
        if position < 0:
            return None
        code = position
        while code < len(data) and data[code] == 0xFF:
            code += 1
        if code >= len(data):
            return None
        if data[code] != 0:  # 0xFF 0x00 is a stuffed byte, not a marker: skipped too
            return code - 1, code
        position = code + 1


def _jpeg_header(data):
    """Walks a JPEG's segments from SOI to the first scan, as libjpeg reads them.

    Returns:
        (offset of the first SOS marker, or -1 when the file ends before it,
        or None when the header makes no sense; list of (start, end) spans of
        extraneous bytes between segments).
    """
    position, junk = 2, []
    while True:
        found = _jpeg_next_marker(data, position)
        if found is None:
            return -1, junk
        marker, code = found
        # The fill run before a marker is allowed; anything else is skipped.
        first_ff = marker
        while first_ff > position and data[first_ff - 1] == 0xFF:
            first_ff -= 1
        if first_ff > position:
            junk.append((position, first_ff))
        kind = data[code]
        if kind == _SOS:
            return marker, junk
        if kind in (_EOI, _SOI):
            return None, junk  # an end, or a second start, before any image data
        if kind in _STANDALONE_MARKERS:
            position = code + 1
            continue
        if code + 3 > len(data):
            return -1, junk
        length = (data[code + 1] << 8) | data[code + 2]
        if length < 2:
            return None, junk
        position = code + 1 + length
        if position > len(data):
            return -1, junk


def jpeg_is_complete(data):
    """Whether a JPEG holds its end-of-image marker after its image data.

    The marker is looked for after the first scan (the walk over the header
    segments finds it), not at the file's end: phones append data after it (a
    Samsung trailer, the video of a motion photo), which every decoder
    ignores. A file cut anywhere before the marker, in the header or the image
    data, has none there (the image data cannot hold it: a 0xFF byte in it is
    followed by 0x00 or a restart marker). Where the header makes no sense
    (an end marker before any image data), the first SOS marker in the file
    stands in for the walk's; the decoder says what else is wrong.
    """
    sos = _jpeg_header(data)[0]
    if sos is None:
        sos = data.find(b"\xff\xda")
        if sos < 0:
            return False
    return sos >= 0 and data.rfind(b"\xff\xd9") > sos  # from the end: usually found at once


def check_bytes(data):
    """The problem with an image file's bytes (one of `IMAGE_PROBLEMS`), or None."""
    if not data:
        return EMPTY_IMAGE
    if data[:2] == JPEG_SOI:
        return None if jpeg_is_complete(data) else TRUNCATED_JPEG
    if data[:8] == PNG_SIGNATURE:
        # Anywhere: data after IEND (some tools append their own) is ignored by every decoder.
        return None if data.rfind(PNG_END) >= len(PNG_SIGNATURE) else TRUNCATED_PNG
    if data[:4] == GIF or data[:2] == BMP:
        return None
    return NOT_AN_IMAGE


def _orientation(image, data=None):
    """The EXIF orientation (1..8) of an opened image, from its header: no pixel is decoded.

    Pillow's `getexif` on a PNG decodes the whole image first when the
    header holds no EXIF (to look for an eXIf chunk after the image data): a
    400-megapixel PNG would be decoded before the pixel limit refused it, and
    every PNG would be decoded twice. Given the file's `data`, such a chunk
    is found by walking the chunks instead; then Pillow reads the tag as
    always (EXIF, else XMP).
    """
    if image.format == "PNG":
        if "exif" not in image.info and data is not None:
            raw = _png_exif(data)
            if raw is not None:
                image.info["exif"] = raw
        return _tag_value(Image.Image.getexif(image))  # not PngImageFile.getexif, which decodes
    return _tag_value(image.getexif())


def _tag_value(exif):
    value = exif.get(ORIENTATION_TAG, 1)
    try:
        value = int(value)
    except (TypeError, ValueError):
        return 1
    # Pillow's exif_transpose ignores values outside 1..8; so do we.
    return value if 1 <= value <= 8 else 1


def exif_orientation(image):
    """The EXIF orientation of an image: 1 (upright) to 8; 1 when it has none.

    Args:
        image: a `PIL.Image.Image`, the bytes of an image file, or its path.
            (Bytes and paths are read from the header only, PNGs included;
            an opened PNG that holds no EXIF before its image data is
            decoded by Pillow to look after it.)
    """
    if isinstance(image, Image.Image):
        # Someone's opened image: Pillow's own answer, the object left as it was.
        return _tag_value(image.getexif())
    if isinstance(image, (bytes, bytearray)):
        data = bytes(image)
    else:
        with open(image, "rb") as f:
            data = f.read()
    try:
        with open_image(io.BytesIO(data)) as opened:
            return _orientation(opened, data)
    except PILLOW_ERRORS:
        return 1  # not an image Pillow reads: the decoder reports it


# Pillow's transpose for each EXIF orientation (those of `ImageOps.exif_transpose`).
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# Pillow's modes of 16-bit grey PNGs (newer Pillows say "I;16", older ones "I").
_SIXTEEN_BIT_GREY = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def read_image(path):
    """Reads an image file to uint8 RGB `[H, W, 3]`, as a photo viewer shows it.

    JPEG, PNG, GIF (first frame) and BMP, as the training pipeline reads;
    grayscale, palette and RGBA become RGB; the EXIF orientation is applied.
    The pixels are the training pipeline's (`locnet_tf.data.decode.read_image`)
    bit for bit: JPEGs with the accurate integer DCT, 16-bit PNGs by the high
    byte of each sample (TensorFlow's decoder; Pillow's own conversion would
    clip every grey level above 255 of 65535 to white).

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
    return decode_image(data, path)


def decode_image(data, name):
    """`read_image` for an image file's bytes (an upload); `name` names it in the errors."""
    info, decoded = _inspect(data, name, verify=True)
    try:
        with open_image(io.BytesIO(data)) if decoded is None else decoded as image:
            if info.orientation in _TRANSPOSE:
                image = image.transpose(_TRANSPOSE[info.orientation])
            return _to_rgb(image)
    except PILLOW_ERRORS as error:
        raise DataError(f"{name}: cannot be decoded: {error}.") from None


def _to_rgb(image):
    """A decoded `PIL.Image` as uint8 RGB, as TensorFlow's decoders give it."""
    if image.mode in _SIXTEEN_BIT_GREY:
        grey = (np.asarray(image).astype(np.uint32) >> 8).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=-1)
    return np.asarray(image.convert("RGB"))


def to_rgb_uint8(image):
    """An array-like RGB image `[H, W, 3]` of values 0..255 as uint8; anything else is refused.

    Every predictor takes its arrays through here (`locnet_tf.runtime`,
    `locnet_tf.evaluate.predictor`), so all model kinds agree. uint8 is taken as it is;
    other integer and float arrays must hold values in 0..255 (floats once
    rounded). Refused, each with the reason (ValueError), as no reading of
    them is safe: an empty image; values below 0 or above 255 (a 16-bit
    image, an int64 sum), which clipping would turn to white; NaN or
    infinity; and a float image whose values all lie in (0, 1], the other
    common convention, which read as 0..255 is a black picture: multiply it by
    255 first. (An all-zero float image is black either way and is taken.)
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"Expected an RGB image [H, W, 3], got shape {image.shape}.")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"empty image: shape {image.shape}, no pixels to predict.")
    if image.dtype == np.uint8:
        return image
    numeric = np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)
    if image.dtype == np.bool_ or not numeric:
        raise ValueError(f"image of dtype {image.dtype}: pass uint8 RGB values 0..255.")
    dtype = image.dtype
    if np.issubdtype(dtype, np.floating):
        if not np.isfinite(image).all():
            raise ValueError("image holds NaN or infinite values: pass uint8 RGB values 0..255.")
        if 0 < image.max() <= 1:
            raise ValueError(
                f"float image in 0..1 (largest value {image.max():g}): multiply by 255 or pass uint8; read as "
                "0..255 it would be a black picture."
            )
        image = np.round(image)  # judged once rounded: 255.3 after a resize's overshoot is 255
    low, high = image.min(), image.max()
    if low < 0 or high > 255:
        raise ValueError(
            f"{dtype} image with values from {low:g} to {high:g}, outside 0..255: pass uint8 RGB "
            "(a 16-bit image: divide by 257 first)."
        )
    return image.astype(np.uint8)
