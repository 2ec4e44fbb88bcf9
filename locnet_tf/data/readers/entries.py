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
  biggest box (first one on ties) as the target and the others in
  ``Record.others``, which only evaluation reads (a box on any labelled
  object); ``"drop"`` leaves the image out and lists it in
  ``SourceData.skipped``, ``"fail"`` raises :class:`DataError`.
- **Images.** Each image must exist and pass `locnet_tf.core.image_files.inspect`: a
  JPEG, PNG, GIF or BMP that the training pipeline decodes right, complete,
  at most `image_files.max_pixels()` pixels, and (``verify_images=True``, the
  default) decoding cleanly, which finds truncated and corrupt files before
  training starts (in threads for large photos; what was found good is
  remembered between runs, `locnet_tf.data.check_cache`). Its size comes from
  the annotation when the format stores it (VOC, COCO), otherwise from the
  header; its EXIF orientation and byte size go into the record, for the
  pipeline (`locnet_tf.data.decode.read_image`). Sizes and boxes mean the image
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

import contextlib
import dataclasses
import logging
import os
import pathlib
from typing import List, Optional, Tuple

import numpy as np
from locnet_tf.core import geometry
from locnet_tf.core.config import MULTI_OBJECT_POLICIES, UNKNOWN_POLICIES
from locnet_tf.data import check_cache
from locnet_tf.core.errors import BoxError, DataError, PolicyError
from locnet_tf.core.records import Record, SourceData
from locnet_tf.data.readers.files import relative_name
from locnet_tf.data.checks import check_images, inspect_image
from locnet_tf.data.readers.classes import check_label_case, untrained_classes
from locnet_tf.data.splits import SPLITS, check_fractions, hash_split

logger = logging.getLogger("locnet_tf.data")

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
        except (DataError, BoxError) as error:
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


def check_options(multi_object="largest", unknown="error", splits=(0.8, 0.1, 0.1)):
    """Raises ValueError for a bad policy or split fractions, before any file is read."""
    if multi_object not in MULTI_OBJECT_POLICIES:
        raise ValueError(f"`multi_object` must be one of {MULTI_OBJECT_POLICIES}, got {multi_object!r}.")
    if unknown not in UNKNOWN_POLICIES:
        raise ValueError(f"`unknown` must be one of {UNKNOWN_POLICIES}, got {unknown!r}.")
    check_fractions(splits)


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
    several = several_objects_note(records, name)
    data = SourceData(
        records=records,
        class_names=resolver.class_names,
        skipped=problems.skipped,
        name=name,
        notes=list(notes) + [note for note in (untrained, several) if note],
    )
    # Train, calibrate and evaluate each read the source: say it once.
    for message in data.notes + ([skipped_summary(data)] if data.skipped else []):
        if message not in _WARNED:
            _WARNED.add(message)
            logger.warning(message)
    return data


_WARNED = set()  # notes and skipped-entry summaries already logged by this process


def several_objects_note(records, name):
    """The note for images with several objects whose largest became the target (None when there are none).

    Said, not silent: the model learns one object per image, and the others
    stay in those images unlabelled as far as training is concerned.
    """
    count = sum(bool(r.others) for split in records.values() for r in split)
    if not count:
        return None
    total = sum(len(split) for split in records.values())
    return (
        f"{name}: {count} of {total} images hold several labelled objects; each trains on its largest "
        "(--multi-object largest; drop leaves them out), and evaluation's loc_accuracy_any_object also "
        "counts a box on any of them"
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
    target = int(np.argmax(areas))
    class_id, box, _ = kept[target]
    return Record(
        path=path,
        present=True,
        box=box,
        class_id=class_id,
        origin=entry.origin,
        size=(height, width),
        orientation=info.orientation,
        file_size=info.file_size,
        others=tuple((c, b) for i, (c, b, _) in enumerate(kept) if i != target),
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
