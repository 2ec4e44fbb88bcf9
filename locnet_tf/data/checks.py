"""The image checks before training, in threads for large photos; what was found good is remembered (`check_cache`)."""

import concurrent.futures
import contextlib
import os
import pathlib

from locnet_tf.core import image_files as images
from locnet_tf.data import check_cache
from locnet_tf.core.errors import DataError, ImageError


def check_image(path, origin, size=None, verify=True):
    """Checks that an image file is there and readable; returns (height, width) as displayed.

    See `inspect_image`, which this is with only the size returned.
    """
    info = inspect_image(path, origin, size, verify)
    return info.height, info.width


def inspect_image(path, origin, size=None, verify=True):
    """Checks that an image file is there and readable; returns its `locnet_tf.core.image_files.ImageInfo`.

    The checks are `locnet_tf.core.image_files.inspect`'s, the same as every reader's:
    format, completeness, the pixel limit and, with `verify`, a clean decode.
    Results are remembered per file (path, size and modification time), so a
    source loaded again in one process (train, then calibrate, then
    evaluate) decodes each image once; `check_images` fills that memory for
    many files at once, in threads.

    Args:
        path: the image file.
        origin: str. Names the annotation in messages.
        size: (height, width) from the annotation, or None to read the header.
        verify: bool. Decode the whole image (finds truncated and corrupt files).

    Raises:
        DataError: missing, empty, unreadable, corrupt, too large or
            unsupported file, or a size that differs from the annotation's.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise DataError(f"{origin}: image file {path} not found")
    try:
        result = _checked(path, verify)
    except OSError as error:
        raise DataError(f"{origin}: image file {path} cannot be read: {error.strerror or error}") from None
    if isinstance(result, str):
        raise DataError(f"{origin}: image file {path}: {result}")
    height, width = result.height, result.width
    if size is not None and tuple(size) != (height, width):
        turned = (
            " as displayed (its EXIF orientation turns the stored pixels)"
            if ((height, width) != (result.stored_height, result.stored_width))
            else ""
        )
        raise DataError(
            f"{origin}: the annotation says the image is {size[1]}x{size[0]} (WxH) but "
            f"{path} is {width}x{height}{turned}"
        )
    return result


def _checked(path, verify):
    """`image_files.inspect`'s ImageInfo for a file, or the problem it found (str); remembered. Raises OSError.

    Remembered in this process, and (files found good) on disk between runs
    (`locnet_tf.data.check_cache`). The pixel limit is applied again to what
    is remembered (`LOCNET_TF_MAX_PIXELS` may have changed since).
    """
    stat = path.stat()
    key = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)  # the file itself, wherever it is named from
    result = _CHECKED.get(key + (verify,)) or _CHECKED.get(key + (True,))
    if result is None:
        disk = check_cache.get_cache()
        result = disk.get(path, stat, verify) if disk is not None else None
        if result is None:
            try:
                result = images.inspect(path.read_bytes(), str(path), verify=verify)
            except ImageError as error:
                result = error.problem
            else:
                if disk is not None:
                    disk.put(path, stat, verify, result)
        _CHECKED[key + (verify,)] = result
    if not isinstance(result, str):
        result = images.too_large(result.stored_width, result.stored_height) or result
    return result


# (device, inode, bytes, mtime, verified) -> ImageInfo, or the problem found.
_CHECKED = {}


# Threads that check images at once (`check_images`): decoding releases the
# GIL (libjpeg-turbo in simplejpeg, zlib in Pillow), so a source of large
# photos checks about as many times faster as there are free cores. Small
# images are checked one by one: their time goes to Python (paths, headers),
# which threads only slow down (2,000 Caltech JPEGs of 15 kB: 0.72 s one by
# one, 0.91-0.97 s in 2 threads).
CHECK_THREADS_ENV = "LOCNET_TF_CHECK_THREADS"


THREADED_MEAN_BYTES = 256 * 1024  # files at least this large on average are checked in threads


def check_threads():
    """Threads for `check_images`: `LOCNET_TF_CHECK_THREADS`, else the usable cores (at most 8)."""
    text = os.environ.get(CHECK_THREADS_ENV, "").strip()
    if text:
        try:
            value = int(text)
        except ValueError:
            value = 0
        if value < 1:
            raise ValueError(f"{CHECK_THREADS_ENV} must be a whole number of at least 1, got {text!r}.")
        return value
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


def check_images(paths, verify=True):
    """Checks many image files at once, in threads, and remembers the results for `inspect_image`.

    Nothing is raised or reported here: the source reader then checks each
    file in its own order (`inspect_image`, which finds the result ready), so
    the messages and the records come in the same order as one by one.
    Without `verify` (headers only), or for small files, nothing is done here.
    """
    threads = check_threads()
    unique = list(dict.fromkeys(pathlib.Path(p) for p in paths if p is not None))
    if not verify or threads < 2 or len(unique) < 2 * threads:
        return
    sizes = []
    for path in unique:
        with contextlib.suppress(OSError):
            sizes.append(path.stat().st_size)
    if not sizes or sum(sizes) / len(sizes) < THREADED_MEAN_BYTES:
        return

    def check(path):
        try:
            if path.is_file():
                _checked(path, verify)
        except OSError:
            pass  # `inspect_image` says it, naming the annotation

    with concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="locnet_tf-check") as pool:
        for _ in pool.map(check, unique):
            pass
