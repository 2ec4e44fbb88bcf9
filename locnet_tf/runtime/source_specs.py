"""The command line's sources as `Source`s: files, folders, globs, camera indices, stream URLs.

    for source in expand_sources(["photos/", "clip.mp4", "0", "rtsp://cam/stream"]):
        for frame in source.frames(stride=2):
            frame.image       # uint8 RGB [H, W, 3]

A source spec is one of:

| spec | sources |
| --- | --- |
| an image file (JPEG, PNG, GIF, BMP) | one `"image"` |
| a video file (`.mp4 .avi .mov .mkv .webm .m4v`) | one `"video"` |
| a folder | its images and videos, recursively, sorted (folder symlinks followed, each folder once) |
| a glob (`"shots/**/*.jpg"`) | the matching files, sorted (each file once) |
| a camera index (`0`, `1`, ...), or `dshow:video=NAME` (Windows) | one `"camera"` |
| a URL: `rtsp://`, `rtsps://`, `rtmp://`, `http(s)://`, `udp://`, `tcp://` | one `"stream"` (an IP camera's URL) |

Finding the inputs (names, the file system, patterns) is kept apart from
reading them (`locnet_tf.runtime.video`, which says what each kind's frames
are): a `Source` is one thing to read, whoever named it.

**Folders and globs** are walked once per folder, following folder symlinks
(a symlink loop is entered once and not again), and a file reached by two
names (a symlink, a hard link) is predicted once.
"""

import fnmatch
import functools
import glob
import os
import pathlib
import sys

from locnet_tf.core import image_files as images
from locnet_tf.runtime.video import Source

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")


def classify(spec):
    """The `Source` kind of one spec that names a single thing (not a folder or glob), or None."""
    spec = str(spec)
    if spec.isdigit() or spec.startswith("dshow:"):
        return "camera"
    if spec.lower().startswith(STREAM_SCHEMES):
        return "stream"
    suffix = pathlib.Path(spec).suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return "video"
    if suffix in images.IMAGE_SUFFIXES:
        return "image"
    return None


def expand_sources(specs, decoder_threads=0):
    """Turns the command line's sources into a list of `Source` (folders and globs expanded).

    Raises:
        FileNotFoundError: a path that does not exist, or a glob matching nothing.
        ValueError: a file that is neither an image nor a video.
    """
    sources = []
    for spec in specs:
        spec = os.fspath(spec)
        kind = classify(spec)
        if kind in ("camera", "stream"):
            sources.append(Source(kind, spec, decoder_threads))
            continue
        if os.path.isdir(spec):
            files = _once(_walk_files(spec))
            _say_unread(files)
            found = [p for p in files if classify(p)]
            if not found:
                raise FileNotFoundError(f"{spec}: no images or videos in this folder.")
            sources.extend(Source(classify(p), str(p), decoder_threads) for p in found)
        elif os.path.isfile(spec):
            if kind is None:
                raise ValueError(
                    f"{spec}: not an image ({', '.join(images.IMAGE_SUFFIXES)}) or a video "
                    f"({', '.join(VIDEO_SUFFIXES)}) by its name."
                )
            sources.append(Source(kind, spec, decoder_threads))
        elif glob.has_magic(spec):
            files = _once(_glob_files(spec))
            _say_unread(files)
            found = [p for p in files if classify(p)]
            if not found:
                raise FileNotFoundError(f"{spec}: no image or video file matches this pattern.")
            sources.extend(Source(classify(p), p, decoder_threads) for p in found)
        else:
            raise FileNotFoundError(f"{spec}: no such file, folder, camera or stream.")
    return sources


def _walk_files(root):
    """Every path under the folder `root` (files, and symlinks to them), following folder symlinks.

    Each folder is entered once (by its device and inode): a symlink loop
    (`d/loop -> d`) or a second link to a folder adds nothing, and the walk ends.
    A folder that cannot be listed is an error naming it, not a hole in the list.
    """
    seen = set()
    found = []

    def refuse(error):
        raise error

    for folder, subfolders, names in os.walk(root, followlinks=True, onerror=refuse):
        info = os.stat(folder)
        if (info.st_dev, info.st_ino) in seen:
            subfolders[:] = []
            continue
        seen.add((info.st_dev, info.st_ino))
        subfolders.sort()
        found.extend(os.path.join(folder, name) for name in names)
    return found


def _glob_files(pattern):
    """The paths matching a glob, as `glob.glob(pattern, recursive=True)` gives them, symlink loops entered once.

    `glob` follows folder symlinks under `**` without end: with one loop each
    file comes back dozens of times, with two the walk never ends. Patterns
    without `**` go to `glob` (they cannot recurse); with it, the folder
    before the first wildcard is walked (`_walk_files`) and each path matched
    part by part: `**` stands for any number of folders, other parts match
    one name as in `glob` (`fnmatch`; names starting with a dot only when the
    part does).
    """
    if "**" not in pattern:
        return glob.glob(pattern)
    parts = pathlib.PurePath(pattern).parts
    first = next(i for i, part in enumerate(parts) if glob.has_magic(part))
    base = os.path.join(*parts[:first]) if first else os.curdir
    wanted = parts[first:]
    if not os.path.isdir(base):
        return []
    matched = []
    for path in _walk_files(base):
        relative = pathlib.PurePath(os.path.relpath(path, base)).parts
        if _parts_match(relative, wanted):
            matched.append(os.path.join(base, *relative) if first else os.path.join(*relative))
    return matched


def _parts_match(names, patterns):
    """Whether path parts `names` match glob parts `patterns` (`**`: zero or more folders)."""

    @functools.lru_cache(maxsize=None)
    def match(i, j):
        if j == len(patterns):
            return i == len(names)
        if patterns[j] == "**":
            if match(i, j + 1):
                return True
            return i < len(names) and not names[i].startswith(".") and match(i + 1, j)
        if i == len(names):
            return False
        if names[i].startswith(".") and not patterns[j].startswith("."):
            return False
        return fnmatch.fnmatchcase(names[i], patterns[j]) and match(i + 1, j + 1)

    return match(0, 0)


def _once(paths):
    """The files among `paths`, sorted, each file once (two names of one file: the first)."""
    seen = set()
    kept = []
    for path in sorted(paths):
        try:
            info = os.stat(path)
        except OSError:  # a broken symlink: not a file
            continue
        if not os.path.isfile(path) or (info.st_dev, info.st_ino) in seen:
            continue
        seen.add((info.st_dev, info.st_ino))
        kept.append(path)
    return kept


def _say_unread(files):
    """Says on stderr which image files of a folder or glob are left out (a format that is not read)."""
    unread = [str(p) for p in files if pathlib.Path(p).suffix.lower() in images.UNSUPPORTED_IMAGE_SUFFIXES]
    if unread:
        shown = ", ".join(unread[:5]) + (f" and {len(unread) - 5} more" if len(unread) > 5 else "")
        print(
            f"warning: {len(unread)} image file{'s' if len(unread) > 1 else ''} not read (a format other than "
            f"JPEG, PNG, GIF or BMP; convert to predict them): {shown}",
            file=sys.stderr,
        )
