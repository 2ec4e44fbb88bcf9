"""The common record every data source yields.

Whatever the format on disk (CSV, Pascal VOC, COCO, YOLO, TFDS, the synthetic
builder), a source ends as records of one image and at most one object, with
the box already validated and in the target format. The tf.data pipeline only
ever sees these, so every format gets the same decode, resize, augmentation and
encoding.

Inside tf.data an *example* is the dict form of a record:

    {"image": uint8[H, W, 3], "box": float32[4] (target format, zeros for
     background), "class_id": int32 (0 for background), "present": bool}

and file-backed records carry `"path"` (a string tensor) until decoded.
"""

import dataclasses
from typing import Optional, Tuple

import numpy as np


# Keys of an example dict in the pipeline.
IMAGE, BOX, CLASS_ID, PRESENT, PATH = "image", "box", "class_id", "present", "path"
# What the source reader found when it checked a file-backed example's image:
# its EXIF orientation (1..8) and the file's size in bytes.
ORIENTATION, FILE_SIZE = "orientation", "file_size"


@dataclasses.dataclass(frozen=True)
class Record:
    """One image and at most one object.

    path: str. Image file path (absolute, or relative to the working directory).
    present: bool. Whether an object of one of the classes is in the image.
    box: float32[4]. `[b_x, b_y, b_h, b_w]` relative; zeros when not present.
    class_id: int. Index into the source's class names; 0 when not present.
    origin: str. Where the annotation came from, e.g. `"labels.csv:12"`, for messages.
    size: (height, width) of the image in pixels as displayed, or None when not known.
    orientation: int. The image file's EXIF orientation (1..8; 1 upright), or
        None when not known (the pipeline then reads it from the file).
    file_size: int. The image file's size in bytes when it was checked, or
        None (the pipeline then checks the file again).
    others: tuple of (class_id, box) pairs: the image's other labelled objects
        when it has several and the largest became the target
        (`multi_object="largest"`), box in the target format. Training never
        sees them; evaluation counts a box on any of them as found
        (`loc_accuracy_any_object`).
    """

    path: str
    present: bool
    box: np.ndarray
    class_id: int = 0
    origin: str = ""
    size: Optional[Tuple[int, int]] = None
    orientation: Optional[int] = None
    file_size: Optional[int] = None
    others: Tuple[Tuple[int, np.ndarray], ...] = ()

    @classmethod
    def background(cls, path, origin="", size=None, orientation=None, file_size=None):
        return cls(
            path=path,
            present=False,
            box=np.zeros(4, np.float32),
            class_id=0,
            origin=origin,
            size=size,
            orientation=orientation,
            file_size=file_size,
        )


@dataclasses.dataclass
class SourceData:
    """A loaded source: its records per split, the class names, and what was skipped.

    records: dict of split name -> list of Record.
    class_names: tuple of str. Target class order.
    skipped: list of (origin, reason) for entries dropped on request
        (`skip_bad=True`, or the `"drop"` multi-object policy). Never filled
        silently: `summary()` and the check command print it.
    notes: list of str. What the reader says about the data that is not an
        error but changes its meaning (a YOLO image without a label file is
        background); logged as warnings and printed by the check command.
    """

    records: dict
    class_names: Tuple[str, ...]
    skipped: list = dataclasses.field(default_factory=list)
    name: Optional[str] = None
    notes: list = dataclasses.field(default_factory=list)
