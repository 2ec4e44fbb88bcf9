"""What every file-based reader shares: classes, image checks, the multi-object
policy, splits and bad-data handling.

A reader (``csv_source``, ``voc``, ``coco``, ``yolo``) only parses its format
into :class:`ImageEntry` objects (one per image, holding the objects exactly as
written) and hands them to :func:`build_source`, which turns them into
validated :class:`~locnet_tf.core.records.Record` objects. So every format gets
the same rules:

- **Classes.** The data's labels go through ``class_map`` first (rename or
  merge: ``{"person": "pedestrian"}``; a label mapped to ``None`` means "ignore
  those objects"). The class list is ``class_names`` when given, otherwise the
  mapped labels of the data (in the reader's order: file order for YOLO and
  COCO, sorted for VOC and CSV). A label absent from a user-given class list is
  an *unknown label*: with ``unknown="error"`` (the default) it is bad data;
  with ``unknown="ignore_object"`` the object is dropped, and an image left
  with no object becomes background (DESIGN.md: ``p_c`` says whether an object
  *of one of the K classes* is present).
- **Several objects in one image.** ``multi_object="largest"`` keeps the
  biggest box (first one on ties), ``"drop"`` leaves the image out and lists
  it in ``SourceData.skipped``, ``"fail"`` raises :class:`DataError`.
- **Images.** Each image must exist and pass `locnet_tf.core.image_files.inspect`: a
  JPEG, PNG, GIF or BMP that the training pipeline decodes right, complete,
  at most `images.max_pixels()` pixels, and (``verify_images=True``, the
  default) decoding cleanly, which finds truncated and corrupt files before
  training starts (in threads for large photos; what was found good is
  remembered between runs, `locnet_tf.data.check_cache`). Its size comes from
  the annotation when the format stores it (VOC, COCO), otherwise from the
  header; its EXIF orientation and byte size go into the record, for the
  pipeline (`locnet_tf.data.pipeline.read_image`). Sizes and boxes mean the image
  as displayed: with its EXIF orientation applied, as every reader applies it.
  Files named like images of a format that is not read (`.webp`, `.tif`...)
  in an image folder are bad data too, never skipped unseen.
- **Boxes** go through :func:`locnet_tf.core.geometry.validate_box`. A box may reach
  up to ``box_tolerance`` (default 2 % of the image size) past an edge and is
  then clipped; farther out, or with zero size, it is bad data.
- **Splits** come from the format when it has them (YOLO ``data.yaml``, VOC
  ``ImageSets/Main``); otherwise each image goes to "train", "validation" or
  "test" by a stable hash (SHA-256) of its path relative to the source root
  and the seed: the same on every machine, whatever the file order.
- **Bad data** raises :class:`DataError` naming the file (and line or object)
  and the problem. With ``skip_bad=True`` the entry is left out instead and
  recorded in ``SourceData.skipped``; a summary is logged as a warning.
"""

import concurrent.futures
import contextlib
import dataclasses
import functools
import hashlib
import logging
import os
import pathlib
from typing import List, Optional, Tuple

import numpy as np
from locnet_tf.core import image_files as images
from locnet_tf.core import geometry
from locnet_tf.core.config import MULTI_OBJECT_POLICIES, UNKNOWN_POLICIES
from locnet_tf.data import check_cache
from locnet_tf.core.records import DataError, Record, SourceData

logger = logging.getLogger("locnet_tf.data")

SPLITS = ("train", "validation", "test")
# How far (fraction of the image size) a box may run past an edge before it is
# an error; boxes within it are clipped to the image.
BOX_TOLERANCE = 0.02


@dataclasses.dataclass
class Annotation:
    """One object as written in the annotation file.

    label: str. The class label as in the data (before `class_map`).
    box: tuple of 4 numbers in `fmt`.
    fmt: str. A `locnet_tf.model.boxes` format name.
    origin: str. Where it was written, e.g. `"Annotations/0001.xml object 2"`.
    """

    label: str
    box: tuple
    fmt: str
    origin: str


@dataclasses.dataclass
class ImageEntry:
    """One image and the objects annotated on it.

    path: pathlib.Path or None. The image file (None when it was not found;
        `missing` then says where it was looked for).
    origin: str. Where the image was named, e.g. `"annotations/car.csv:12"`.
    objects: list of Annotation (empty for background).
    size: (height, width) from the annotation, or None to read the header.
    split: "train" / "validation" / "test", or None to split by hash.
    missing: str. Why `path` is None (the places looked at).
    bad: str. Why one of its annotations was skipped (`skip_bad`). Such an
        image is left out whole: keeping it with an object missing would
        mislabel it (as background, or as the wrong "largest" object).
    background: str. Where the image was listed as background (a CSV row
        with no box), if it was: an image listed as background and with an
        object is conflicting data.
    """

    path: Optional[pathlib.Path]
    origin: str
    objects: List[Annotation] = dataclasses.field(default_factory=list)
    size: Optional[Tuple[int, int]] = None
    split: Optional[str] = None
    missing: str = ""
    bad: str = ""  # set when one of its annotations was skipped: the image is left out
    background: str = ""
    # Where the same image, with the same annotation, is listed for another
    # split (a YOLO data.yaml whose val: is its train: folder): not a conflict.
    also_in: str = ""


class PolicyError(DataError):
    """Raised by `multi_object="fail"`: never skipped, even with `skip_bad=True`."""


class Problems:
    """Collects bad data: raises `DataError`, or records it when `skip_bad`."""

    def __init__(self, skip_bad):
        self.skip_bad = bool(skip_bad)
        self.skipped = []

    @contextlib.contextmanager
    def entry(self, origin, on_skip=None):
        """Runs a block for one entry; bad data inside it is raised or skipped.

        The message always starts with `origin` (the file and line or object),
        unless it already starts with that file (e.g. naming the object's line).
        `on_skip(message)` is called when the entry is skipped (readers use it
        to mark the image the bad annotation belonged to).
        """
        try:
            yield
        except PolicyError:
            raise
        except (DataError, geometry.BoxError) as error:
            message = str(error)
            source_file = origin.split(":")[0].split(" ")[0]
            if not message.startswith(source_file):
                message = f"{origin}: {message}"
            if not self.skip_bad:
                raise DataError(message) from error
            self.skipped.append((origin, message))
            if on_skip is not None:
                on_skip(message)

    def skip(self, origin, reason):
        """Records an entry left out on purpose (e.g. `multi_object="drop"`)."""
        self.skipped.append((origin, reason))


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
    """`images.inspect`'s ImageInfo for a file, or the problem it found (str); remembered. Raises OSError.

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
            except images.ImageError as error:
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


def hash_split(key, fractions, seed=0):
    """Assigns `key` (a relative path) to a split by a stable hash.

    Args:
        key: str. Identifies the image independently of the machine.
        fractions: (train, validation, test) fractions, summing to 1.
        seed: int. Changes the assignment as a whole.

    Returns:
        "train", "validation" or "test".
    """
    # SHA-256, not zlib.crc32: a CRC is linear, so names that differ in a few
    # characters ("images/face_image_0001.jpg" ... "_0040.jpg") landed in
    # lumps; 120 such Caltech names once gave a validation split of 0 images.
    # surrogateescape: a file name that is not UTF-8 (a Latin-1 name on Linux)
    # hashes by its bytes.
    digest = hashlib.sha256(f"{seed}:{key}".encode("utf-8", "surrogateescape")).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    edge = 0.0
    for name, fraction in zip(SPLITS, fractions):
        edge += fraction
        if u < edge:
            return name
    return SPLITS[-1]


def check_options(multi_object="largest", unknown="error", splits=(0.8, 0.1, 0.1)):
    """Raises ValueError for a bad policy or split fractions, before any file is read."""
    if multi_object not in MULTI_OBJECT_POLICIES:
        raise ValueError(f"`multi_object` must be one of {MULTI_OBJECT_POLICIES}, got {multi_object!r}.")
    if unknown not in UNKNOWN_POLICIES:
        raise ValueError(f"`unknown` must be one of {UNKNOWN_POLICIES}, got {unknown!r}.")
    check_fractions(splits)


def check_fractions(splits):
    fractions = tuple(float(f) for f in splits)
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"`splits` must be three fractions (train, validation, test) >= 0 summing to 1, got {splits}.")
    return fractions


class ClassResolver:
    """Maps the data's labels to class ids (see the module docstring for the rules).

    Args:
        data_labels: labels found in (or declared by) the data, in reader order.
        class_names: user-given class list, or None to take it from the data.
        class_map: dict label -> new label or None (ignore), or None.
        unknown: "error" or "ignore_object".
        sort: bool. Sort the class names taken from the data.
    """

    def __init__(self, data_labels, class_names=None, class_map=None, unknown="error", sort=False):
        if unknown not in UNKNOWN_POLICIES:
            raise ValueError(f"`unknown` must be one of {UNKNOWN_POLICIES}, got {unknown!r}.")
        self.class_map = dict(class_map or {})
        self.unknown = unknown
        self.from_data = class_names is None
        if class_names is not None:
            names = tuple(str(n) for n in class_names)
            if not names or len(set(names)) != len(names):
                raise ValueError(f"`class_names` must be unique and non-empty, got {list(names)}.")
        else:
            mapped = [self.map_label(label) for label in data_labels]
            names = tuple(dict.fromkeys(m for m in mapped if m is not None))
            if sort:
                names = tuple(sorted(names))
        self.class_names = names
        self._index = {name: i for i, name in enumerate(names)}

    def map_label(self, label):
        label = str(label)
        return self.class_map.get(label, label)

    def resolve(self, label, origin):
        """Class id of `label`, or None when the object is to be ignored.

        Raises:
            DataError: for an unknown label when `unknown="error"`.
        """
        mapped = self.map_label(label)
        if mapped is None:
            return None
        if mapped in self._index:
            return self._index[mapped]
        if self.unknown == "ignore_object":
            return None
        shown = f"{label!r}" + (f" (mapped to {mapped!r})" if mapped != label else "")
        raise DataError(
            f"{origin}: unknown label {shown}; classes are {list(self.class_names)}. "
            "Add it to `class_map` (map it to None to ignore such objects) or pass "
            "unknown='ignore_object'."
        )


def build_source(
    entries,
    resolver,
    problems,
    *,
    root,
    name,
    multi_object="largest",
    splits=(0.8, 0.1, 0.1),
    seed=0,
    box_tolerance=BOX_TOLERANCE,
    verify_images=True,
    notes=(),
):
    """Turns parsed entries into a `SourceData` (the shared half of every reader).

    Args:
        entries: iterable of ImageEntry.
        resolver: ClassResolver.
        problems: Problems (already holding the reader's parse errors if skipping).
        root: folder that paths are hashed relative to.
        name: str. The source's name (its spec).
        multi_object: "largest", "drop" or "fail".
        splits: (train, validation, test) fractions for hash splitting.
        seed: int. Seed of the hash split.
        box_tolerance: float. See `locnet_tf.core.geometry.validate_box`.
        verify_images: bool. Decode every image fully (False: headers and file ends only).
        notes: what the reader wants said about the data that is not an error
            (images a YOLO source takes as background for want of a label file).

    Returns:
        SourceData with records under "train", "validation" and "test".
    """
    check_options(multi_object, resolver.unknown, splits)
    fractions = check_fractions(splits)
    entries = list(entries)
    if resolver.from_data:
        check_label_case(resolver, entries, name)
    records = {split: [] for split in SPLITS}
    annotated = {}  # resolved image path -> where it was first annotated
    check_images([e.path for e in entries if not e.bad], verify_images)  # in threads, before the loop says anything
    for entry in entries:
        if entry.bad:
            problems.skip(
                entry.origin, f"{entry.origin}: image left out, an annotation of it was skipped ({entry.bad})"
            )
            continue
        with problems.entry(entry.origin):
            real = None
            if entry.path is not None:
                key = real = os.path.realpath(entry.path)
                if key in annotated and not entry.also_in:
                    raise DataError(
                        f"{entry.origin}: image {entry.path} is listed twice (also at {annotated[key]}): "
                        "conflicting annotations, or one image in two splits (keep one)"
                    )
                annotated.setdefault(key, entry.origin)
            record = _entry_to_record(entry, resolver, problems, multi_object, box_tolerance, verify_images)
            if record is None:
                continue
            split = entry.split or hash_split(relative_name(entry.path, root, real), fractions, seed)
            records.setdefault(split, []).append(record)
    disk = check_cache.get_cache()
    if disk is not None:
        disk.flush()  # what was checked, for the next run
    untrained = untrained_classes(records, resolver.class_names, name, resolver.from_data)
    data = SourceData(
        records=records,
        class_names=resolver.class_names,
        skipped=problems.skipped,
        name=name,
        notes=list(notes) + ([untrained] if untrained else []),
    )
    # Train, calibrate and evaluate each read the source: say it once.
    for message in data.notes + ([skipped_summary(data)] if data.skipped else []):
        if message not in _WARNED:
            _WARNED.add(message)
            logger.warning(message)
    return data


_WARNED = set()  # notes and skipped-entry summaries already logged by this process


def untrained_classes(records, class_names, name, from_data=True):
    """One line naming the classes without a training image (and where their images are), or None.

    `from_data`: the class names come from the data (left out with
    `--class-map NAME=`), not from the user (left out of `--classes`).

    Such a class is kept (the class list may be meant so: given with
    `--classes`, or declared by the data), but the model cannot learn it and
    scores 0 on it: said when the source is read, before training, not found
    in the report after it. A source without any training image (read to be
    evaluated) says nothing.
    """
    counts = {
        split: np.bincount([r.class_id for r in rows if r.present], minlength=len(class_names))
        for split, rows in records.items()
    }
    if not records.get("train"):
        return None
    missing, shown = [], []
    for class_id, class_name in enumerate(class_names):
        if counts["train"][class_id]:
            continue
        elsewhere = [f"{counts[s][class_id]} in {s}" for s in counts if s != "train" and counts[s][class_id]]
        missing.append(class_name)
        shown.append(f"{class_name!r} ({', '.join(elsewhere) or 'no image at all'})")
    if not missing:
        return None
    which = f"class {shown[0]}" if len(missing) == 1 else f"{len(missing)} classes: {', '.join(shown)}"
    them = "it" if len(missing) == 1 else "them"
    how = f"--class-map {','.join(f'{n}=' for n in missing)}" if from_data else "--classes"
    return (
        f"{name}: no training image of {which}; the model cannot learn {them} and will score 0 on {them}. "
        f"Move some of {'its' if len(missing) == 1 else 'their'} images to the train split, or leave {them} out "
        f"({how})"
    )


def check_label_case(resolver, entries, name):
    """Raises DataError when two class names taken from the data differ only in case.

    `Box` and `box` would silently become two classes, each with part of the
    objects. The message names where each spelling is first used.
    """
    by_fold = {}
    for class_name in resolver.class_names:
        by_fold.setdefault(class_name.casefold(), []).append(class_name)
    clashes = [names for names in by_fold.values() if len(names) > 1]
    if not clashes:
        return
    first_use = {}
    for entry in entries:
        for obj in entry.objects:
            first_use.setdefault(resolver.map_label(obj.label), obj.origin)
    spelled = ", ".join(f"{n!r} ({first_use[n] if n in first_use else 'in the class list'})" for n in clashes[0])
    merge = ",".join(f"{n}={clashes[0][0]}" for n in clashes[0][1:])
    raise DataError(
        f"{name}: labels {spelled} differ only in case and would be {len(clashes[0])} classes; "
        f"use one spelling, or merge them with --class-map {merge!r} (or give the classes with --classes)"
    )


# Formats whose boxes are in pixels (see `_looks_relative`).
PIXEL_FORMATS = ("xyxy", "coco")


def _looks_relative(box, fmt):
    """Whether a pixel box is less than a pixel across with every value within -1..1: relative coordinates.

    Relative (0..1) boxes in a pixel format would become sub-pixel boxes in a
    corner of the image. (VOC's 1-based corners are shifted by -1 before
    they get here, hence -1.)
    """
    values = [float(v) for v in box]
    if fmt not in PIXEL_FORMATS or not all(-1.0 <= v <= 1.0 for v in values):
        return False
    if fmt == "coco":
        width, height = values[2], values[3]
    else:
        width, height = values[2] - values[0], values[3] - values[1]
    return 0.0 < min(width, height) < 1.0  # zero or negative sizes get validate_box's own message


def _entry_to_record(entry, resolver, problems, multi_object, tolerance, verify):
    if entry.path is None:
        raise DataError(f"{entry.origin}: image file not found ({entry.missing})")
    if entry.background and entry.objects:
        raise DataError(
            f"{entry.background}: {entry.path.name} is listed as background here and with an object at "
            f"{entry.objects[0].origin}: conflicting rows (remove one)"
        )
    info = inspect_image(entry.path, entry.origin, entry.size, verify)
    height, width = info.height, info.width
    kept = []
    for obj in entry.objects:
        class_id = resolver.resolve(obj.label, obj.origin)
        if class_id is None:
            continue
        if _looks_relative(obj.box, obj.fmt) and max(height, width) > 2:
            raise DataError(
                f"{obj.origin}: box {tuple(obj.box)} is less than a pixel across: relative (0..1) coordinates? "
                f"This format's boxes are in pixels (relative boxes belong in YOLO label files)"
            )
        box = geometry.validate_box(obj.box, obj.fmt, height=height, width=width, where=obj.origin, tolerance=tolerance)
        kept.append((class_id, box, obj.origin))
    path = os.path.abspath(entry.path)
    if not kept:
        return Record.background(
            path, origin=entry.origin, size=(height, width), orientation=info.orientation, file_size=info.file_size
        )
    if len(kept) > 1:
        if multi_object == "fail":
            raise PolicyError(
                f"{entry.origin}: image {entry.path.name} has {len(kept)} objects and "
                "multi_object='fail' (use 'largest' to keep the biggest, or 'drop')"
            )
        if multi_object == "drop":
            # Named as the other skipped entries are: the file, and where each object is written.
            where = list(dict.fromkeys(origin for _, _, origin in kept))
            shown = ", ".join(where[:3]) + (", ..." if len(where) > 3 else "")
            problems.skip(
                entry.origin,
                f"{entry.origin}: image {entry.path.name} has {len(kept)} objects ({shown}): left out "
                "(multi_object='drop')",
            )
            return None
    areas = [float(box[2] * box[3]) for _, box, _ in kept]
    class_id, box, _ = kept[int(np.argmax(areas))]
    return Record(
        path=path,
        present=True,
        box=box,
        class_id=class_id,
        origin=entry.origin,
        size=(height, width),
        orientation=info.orientation,
        file_size=info.file_size,
    )


def skipped_summary(data, first=5):
    """One line: how many entries were skipped and the first few, with reasons."""
    shown = "; ".join(reason for _, reason in data.skipped[:first])
    more = (
        (
            f" (and {len(data.skipped) - first} more: python -m locnet_tf.data {data.name or 'SPEC'} --skip-bad "
            "lists them all)"
        )
        if len(data.skipped) > first
        else ""
    )
    count = len(data.skipped)
    return f"{data.name or 'source'}: skipped {count} {'entry' if count == 1 else 'entries'}: {shown}{more}"


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
