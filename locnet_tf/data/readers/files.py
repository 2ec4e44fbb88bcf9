"""File-system helpers for the readers: names relative to a source root, finding files, reading text, listing images."""

import functools
import os
import pathlib

from locnet_tf.core import image_files as images
from locnet_tf.core.errors import DataError


def relative_name(path, root, resolved=None):
    """`path` relative to `root` in posix form when inside it, else as is.

    `resolved`: `os.path.realpath(path)` when the caller has it already.
    """
    try:
        return pathlib.Path(resolved or os.path.realpath(path)).relative_to(_real_folder(root)).as_posix()
    except ValueError:
        return pathlib.Path(path).as_posix()


@functools.lru_cache(maxsize=64)
def _real_folder(root):
    # A source's root, resolved once for all its images (resolving walks every component with lstat).
    return pathlib.Path(os.path.realpath(root))


def read_text(path, name=None):
    """A text file's content (UTF-8, a byte-order mark allowed); DataError naming it when it cannot be read."""
    name = name or str(path)
    try:
        return pathlib.Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise DataError(
            f"{name}: not UTF-8 text (byte 0x{error.object[error.start]:02x} at position {error.start})"
        ) from None
    except OSError as error:
        raise DataError(f"{name}: cannot be read: {error.strerror or error}") from None


def find_file(name, folders):
    """First `folder / name` that exists, or None. Absolute names are used as is."""
    name = str(name).strip()
    if os.path.isabs(name):
        return pathlib.Path(name) if os.path.exists(name) else None
    for folder in folders:
        candidate = pathlib.Path(folder) / name
        if candidate.is_file():
            return candidate
    return None


def list_images(folder):
    """Image files under `folder` (recursively), sorted: those the readers take, and those they do not.

    Files with the suffix of an image format that is not read (`.webp`,
    `.tif`, `.heic`...) are listed too, so that they are refused by name (or
    skipped and listed with `skip_bad`), never left out unseen; so are
    symbolic links that point nowhere (refused as missing images).

    Subfolders that are symbolic links are followed, each real folder once
    (by its resolved path), so an image is never listed twice and the walk
    always ends: a link to a folder of the tree itself (a loop back up, or a
    second name for a subfolder) adds nothing, the folder is listed under its
    own name; of two links to one folder outside the tree, the first in name
    order is followed.
    """
    folder = pathlib.Path(folder)
    suffixes = images.IMAGE_SUFFIXES + images.UNSUPPORTED_IMAGE_SUFFIXES
    tree = {os.path.realpath(top) for top, _, _ in os.walk(folder)}  # its own folders, links not followed
    found, visited = [], set()
    for top, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(top)
        if real in visited:
            dirs[:] = []  # reached again through a link: already listed
            continue
        visited.add(real)
        # Sorted: which of two ways into one folder is taken is the same on every machine.
        links = {d for d in dirs if os.path.islink(os.path.join(top, d))}
        dirs[:] = sorted(d for d in dirs if d not in links or os.path.realpath(os.path.join(top, d)) not in tree)
        found += [pathlib.Path(top, name) for name in files if os.path.splitext(name)[1].lower() in suffixes]
    return sorted(found)
