"""What every file-based reader shares: classes, image checks, the multi-object
policy, splits and bad-data handling.

A reader (``csv_source``, ``voc``, ``coco``, ``yolo``) only parses its format
into :class:`ImageEntry` objects (one per image, holding the objects exactly as
written) and hands them to :func:`build_source`, which turns them into
validated :class:`~locnet_tf.data.records.Record` objects. So every format gets
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
- **Images.** Each image must exist, be non-empty and have a readable header;
  its size comes from the annotation when the format stores it (VOC, COCO),
  otherwise from the header (PIL, no decode). Sizes and boxes mean the image
  as displayed: with its EXIF orientation applied, as every reader applies it. ``verify_images=True`` also
  decodes every image fully (finds truncated files; slower).
- **Boxes** go through :func:`locnet_tf.boxes.validate_box`. A box may reach
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

import contextlib
import dataclasses
import hashlib
import logging
import os
import pathlib
from typing import List, Optional, Tuple

import numpy as np
from PIL import Image, UnidentifiedImageError

from locnet_tf import boxes as box_lib
from locnet_tf import images
from locnet_tf.data.records import DataError, Record, SourceData

logger = logging.getLogger("locnet_tf.data")

SPLITS = ("train", "validation", "test")
MULTI_OBJECT_POLICIES = ("largest", "drop", "fail")
UNKNOWN_POLICIES = ("error", "ignore_object")
# How far (fraction of the image size) a box may run past an edge before it is
# an error; boxes within it are clipped to the image.
BOX_TOLERANCE = 0.02
# What the pipeline's tf.io.decode_image reads; anything else would pass the
# checks here and then fail in the middle of training.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
DECODABLE_FORMATS = ("JPEG", "PNG", "BMP", "GIF")


@dataclasses.dataclass
class Annotation:
    """One object as written in the annotation file.

    label: str. The class label as in the data (before `class_map`).
    box: tuple of 4 numbers in `fmt`.
    fmt: str. A `locnet_tf.boxes` format name.
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
    """

    path: Optional[pathlib.Path]
    origin: str
    objects: List[Annotation] = dataclasses.field(default_factory=list)
    size: Optional[Tuple[int, int]] = None
    split: Optional[str] = None
    missing: str = ""
    bad: str = ""  # set when one of its annotations was skipped: the image is left out


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
        except (DataError, box_lib.BoxError) as error:
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


def relative_name(path, root):
    """`path` relative to `root` in posix form when inside it, else as is."""
    try:
        return pathlib.Path(path).resolve().relative_to(pathlib.Path(root).resolve()).as_posix()
    except ValueError:
        return pathlib.Path(path).as_posix()


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


def check_image(path, origin, size=None, verify=False):
    """Checks that an image file is there and readable; returns (height, width).

    Args:
        path: the image file.
        origin: str. Names the annotation in messages.
        size: (height, width) from the annotation, or None to read the header.
        verify: bool. Decode the whole image (finds truncated files).

    Raises:
        DataError: missing, empty, unreadable or undecodable (format) file,
            or a size that differs from the annotation's.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise DataError(f"{origin}: image file {path} not found")
    if path.stat().st_size == 0:
        raise DataError(f"{origin}: image file {path} is empty (0 bytes)")
    try:  # the header only (PIL opens lazily), unless `verify`
        with Image.open(path) as image:
            # As displayed: the pipeline applies the EXIF orientation, and
            # annotations are taken on the photo as a viewer shows it.
            height, width = images.oriented_size(image)
            stored_width, stored_height = image.size
            image_format = image.format
            if verify:
                image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise DataError(f"{origin}: image file {path} cannot be read: {error}") from error
    if image_format not in DECODABLE_FORMATS:
        raise DataError(
            f"{origin}: image file {path} is {image_format}; training reads only "
            f"{', '.join(DECODABLE_FORMATS)} (convert it first)"
        )
    if size is not None and tuple(size) != (height, width):
        turned = " as displayed (its EXIF orientation turns the stored pixels)" if (
            (height, width) != (stored_height, stored_width)) else ""
        raise DataError(
            f"{origin}: the annotation says the image is {size[1]}x{size[0]} (WxH) but "
            f"{path} is {width}x{height}{turned}"
        )
    return height, width


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
    digest = hashlib.sha256(f"{seed}:{key}".encode("utf-8")).digest()
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
        raise ValueError(
            f"`multi_object` must be one of {MULTI_OBJECT_POLICIES}, got {multi_object!r}."
        )
    if unknown not in UNKNOWN_POLICIES:
        raise ValueError(f"`unknown` must be one of {UNKNOWN_POLICIES}, got {unknown!r}.")
    check_fractions(splits)


def check_fractions(splits):
    fractions = tuple(float(f) for f in splits)
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(
            f"`splits` must be three fractions (train, validation, test) >= 0 summing to 1, "
            f"got {splits}."
        )
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
    verify_images=False,
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
        box_tolerance: float. See `locnet_tf.boxes.validate_box`.
        verify_images: bool. Decode every image fully.

    Returns:
        SourceData with records under "train", "validation" and "test".
    """
    check_options(multi_object, resolver.unknown, splits)
    fractions = check_fractions(splits)
    records = {split: [] for split in SPLITS}
    for entry in entries:
        if entry.bad:
            problems.skip(entry.origin, f"{entry.origin}: image left out, an annotation of it was skipped ({entry.bad})")
            continue
        with problems.entry(entry.origin):
            record = _entry_to_record(entry, resolver, problems, multi_object, box_tolerance, verify_images)
            if record is None:
                continue
            split = entry.split or hash_split(relative_name(entry.path, root), fractions, seed)
            records.setdefault(split, []).append(record)
    data = SourceData(
        records=records, class_names=resolver.class_names, skipped=problems.skipped, name=name
    )
    if data.skipped:
        summary = skipped_summary(data)
        # Train, calibrate and evaluate each read the source: say it once.
        if summary not in _WARNED:
            _WARNED.add(summary)
            logger.warning(summary)
    return data


_WARNED = set()  # skipped-entry summaries already logged by this process


def _entry_to_record(entry, resolver, problems, multi_object, tolerance, verify):
    if entry.path is None:
        raise DataError(f"{entry.origin}: image file not found ({entry.missing})")
    height, width = check_image(entry.path, entry.origin, entry.size, verify)
    kept = []
    for obj in entry.objects:
        class_id = resolver.resolve(obj.label, obj.origin)
        if class_id is None:
            continue
        box = box_lib.validate_box(
            obj.box, obj.fmt, height=height, width=width, where=obj.origin, tolerance=tolerance
        )
        kept.append((class_id, box))
    path = os.path.abspath(entry.path)
    if not kept:
        return Record.background(path, origin=entry.origin, size=(height, width))
    if len(kept) > 1:
        if multi_object == "fail":
            raise PolicyError(
                f"{entry.origin}: image {entry.path.name} has {len(kept)} objects and "
                "multi_object='fail' (use 'largest' to keep the biggest, or 'drop')"
            )
        if multi_object == "drop":
            problems.skip(entry.origin, f"{len(kept)} objects (multi_object='drop')")
            return None
    areas = [float(box[2] * box[3]) for _, box in kept]
    class_id, box = kept[int(np.argmax(areas))]
    return Record(path=path, present=True, box=box, class_id=class_id, origin=entry.origin, size=(height, width))


def skipped_summary(data, first=5):
    """One line: how many entries were skipped and the first few, with reasons."""
    shown = "; ".join(reason for _, reason in data.skipped[:first])
    more = f" (and {len(data.skipped) - first} more)" if len(data.skipped) > first else ""
    count = len(data.skipped)
    return f"{data.name or 'source'}: skipped {count} {'entry' if count == 1 else 'entries'}: {shown}{more}"


def list_images(folder):
    """Image files under `folder` (recursively), sorted."""
    folder = pathlib.Path(folder)
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
