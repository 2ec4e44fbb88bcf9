"""TensorFlow's decoding of an image file: a file path in an example dict -> uint8 RGB pixels.

    read_image(path, orientation=None, file_size=None)  -> uint8 [H, W, 3], EXIF orientation applied
    decode(example)                                      {"path", ...} -> {"image", ...}
    apply_orientation(image, orientation)                the EXIF transposes in TensorFlow

The tf.data pipeline (`locnet_tf.data.pipeline`) maps `decode` over the records of a source.
The pixels and the checks are those of the TF-free reader, `locnet_tf.core.image_files`
(`read_image`, `inspect`), in the same words: a bad file stops the pipeline with an error
naming it. The source readers check every file before a pipeline is built, so these checks
catch only files changed since.
"""

import tensorflow as tf

from locnet_tf.core.errors import ImageError

# The header checks and their wording are shared with the TF-free reader
# (`locnet_tf.core.image_files.read_image`, which inference uses).
from locnet_tf.core.image_files import (
    BMP as _BMP,
    EMPTY_IMAGE,
    GIF as _GIF,
    JPEG_SOI as _JPEG_SOI,
    NOT_AN_IMAGE,
    PNG_END as _PNG_END,
    PNG_SIGNATURE as _PNG_SIGNATURE,
    TRUNCATED_JPEG,
    TRUNCATED_PNG,
    inspect as inspect_image,
)
from locnet_tf.core.records import FILE_SIZE, IMAGE, ORIENTATION, PATH


def _check(condition, problem, path):
    # tf.debugging.Assert puts `data` in the error message, so the failing
    # file is named there (a bare decode error never names it).
    return tf.debugging.Assert(condition, [tf.constant(problem + ":"), path], summarize=1)


def read_image(path, orientation=None, file_size=None):
    """Reads and decodes one image file to uint8 RGB `[H, W, 3]`, as a viewer shows it.

    JPEG, PNG, GIF (first frame) and BMP; grayscale and RGBA become RGB (a
    16-bit PNG by the high byte of each sample); the EXIF orientation is
    applied (`apply_orientation`), so boxes annotated on the displayed photo
    fit its pixels.

    Before decoding, checks what `locnet_tf.core.image_files.inspect` checks before it
    decodes, in the same words: that the file is not empty, is one of those
    formats, is complete (a JPEG's end-of-image marker after its image data,
    a PNG's IEND chunk; data appended after either is allowed) and that its
    header's size is within the pixel limit (`image_files.max_pixels()`). A
    failed check raises `tf.errors.InvalidArgumentError` whose message names
    the file and the problem; TF's decoders would otherwise report a
    truncated file with no name, and decode an image of any size.

    Args:
        path: string scalar tensor.
        orientation: int scalar tensor, the EXIF orientation the source reader
            read from the file's header (`Record.orientation`), or None to read
            it here.
        file_size: int scalar tensor, the file's size in bytes when the
            source reader checked it (`Record.file_size`), or None to check
            the file here.

    With neither, the header is read by the functions of `locnet_tf.core.image_files`
    (Pillow, in a `tf.py_function`: no TF op parses EXIF or walks a JPEG's
    segments), so both readers agree on every file. With both (the records
    of a file source, `pipeline.records_dataset`), no Python runs per image: a file
    that still has the size it had is as the source reader found it, which
    checked all of the above, and only its first and last bytes are checked
    again (as cheap as it gets: in a tf.data function every op counts); a
    file whose size changed since is refused as such, after those checks (a
    file cut since is "truncated").
    """
    path = tf.convert_to_tensor(path, tf.string)
    data = tf.io.read_file(path)  # a missing file fails here, naming it
    is_jpeg = tf.equal(tf.strings.substr(data, 0, 2), _JPEG_SOI)
    if orientation is None or file_size is None:
        read_orientation, problem = _header(data)
        orientation = read_orientation if orientation is None else orientation
    if file_size is None:
        checked = tf.debugging.Assert(tf.equal(problem, ""), [problem, path], summarize=1)
    else:
        checked = _quick_checks(data, is_jpeg, path, file_size)
    with tf.control_dependencies([checked]):
        data = tf.identity(data)
    return apply_orientation(decode_pixels(data, is_jpeg), orientation)


def decode_pixels(data, is_jpeg):
    """uint8 [H, W, 3] pixels of checked file bytes (`is_jpeg`: a bool tensor); the exported graph decodes with it too.

    The accurate integer DCT: decode_image's default (the fast DCT) is off by
    up to 14 grey levels, and the accurate one is what Pillow decodes, so
    training, the exported graph and the TF-free reader
    (`locnet_tf.core.image_files`) see the same pixels.
    """
    image = tf.cond(
        is_jpeg,
        lambda: tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE"),
        lambda: tf.io.decode_image(data, channels=3, expand_animations=False, dtype=tf.uint8),
    )
    image.set_shape([None, None, 3])
    return image


def _header(data):
    """(EXIF orientation, the problem `image_files.inspect` finds before decoding, or "") of a file's bytes."""

    def read(d):
        d = d.numpy()
        try:
            info = inspect_image(d, "", verify=False)  # the header and the file's ends: no pixel is decoded
        except ImageError as error:
            return 1, error.problem
        return info.orientation, ""

    orientation, problem = tf.py_function(read, [data], [tf.int32, tf.string])
    return tf.ensure_shape(orientation, []), tf.ensure_shape(problem, [])


_TAIL = 256  # bytes at the end where a file's end marker usually is (cameras pad some after it)
CHANGED = "image file changed since the source was read (its size differs); read the source again"


def _quick_checks(data, is_jpeg, path, file_size):
    """The checks of a file that the source reader checked when it was `file_size` bytes (see `read_image`)."""
    size = tf.strings.length(data)
    unchanged = tf.equal(tf.cast(size, tf.int64), tf.cast(file_size, tf.int64))
    head = tf.strings.substr(data, 0, 8)
    is_png = tf.equal(head, _PNG_SIGNATURE)
    is_other = tf.logical_or(
        tf.equal(tf.strings.substr(head, 0, 4), _GIF), tf.equal(tf.strings.substr(head, 0, 2), _BMP)
    )
    start = tf.maximum(size - _TAIL, 0)
    tail = tf.io.decode_raw(tf.strings.substr(data, start, size - start), tf.uint8)
    ends_jpeg = tf.reduce_any(tf.logical_and(tf.equal(tail[:-1], 0xFF), tf.equal(tail[1:], 0xD9)))
    png_start = tf.maximum(size - len(_PNG_END), 0)
    ends_png = tf.equal(tf.strings.substr(data, png_start, size - png_start), _PNG_END)
    with tf.control_dependencies(
        [
            _check(size > 0, EMPTY_IMAGE, path),
            _check(tf.logical_or(size == 0, tf.reduce_any([is_jpeg, is_png, is_other])), NOT_AN_IMAGE, path),
            # Data after the end marker: the reader found the marker before it.
            _check(tf.reduce_any([tf.logical_not(is_jpeg), ends_jpeg, unchanged]), TRUNCATED_JPEG, path),
            _check(tf.reduce_any([tf.logical_not(is_png), ends_png, unchanged]), TRUNCATED_PNG, path),
        ]
    ):
        return _check(unchanged, CHANGED, path)


def apply_orientation(image, orientation):
    """Turns a decoded `[H, W, C]` image as its EXIF orientation (1..8) says.

    The same transposes as Pillow's `ImageOps.exif_transpose`: 2 mirror,
    3 rotate 180, 4 flip, 5 transpose, 6 rotate 90 clockwise, 7 transverse,
    8 rotate 90 counter-clockwise; 1 (or anything else) leaves it as it is.
    """
    branches = [
        lambda: image,
        lambda: image[:, ::-1],
        lambda: image[::-1, ::-1],
        lambda: image[::-1],
        lambda: tf.transpose(image, [1, 0, 2]),
        lambda: tf.transpose(image, [1, 0, 2])[:, ::-1],
        lambda: tf.transpose(image, [1, 0, 2])[::-1, ::-1],
        lambda: tf.transpose(image, [1, 0, 2])[::-1],
    ]
    index = tf.where((orientation >= 1) & (orientation <= 8), orientation - 1, 0)
    return tf.switch_case(tf.cast(index, tf.int32), branches)


def decode(example):
    """`{"path", ...}` -> `{"image", ...}`: reads and decodes the image file.

    See `read_image` for the formats and the checks. An `"orientation"` and a
    `"file_size"` (from `pipeline.records_dataset`) are used, not read again from the
    file, and dropped. The other keys pass through; `"path"` is kept for messages and dropped later
    by `make_dataset`.
    """
    out = dict(example)
    out[IMAGE] = read_image(example[PATH], out.pop(ORIENTATION, None), out.pop(FILE_SIZE, None))
    return out
