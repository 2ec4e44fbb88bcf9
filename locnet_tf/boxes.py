"""Box formats, conversion, validation and IoU.

The target vector stores a box as ``[b_x, b_y, b_h, b_w]``: the centre, then
**height before width**, all relative to the image ((0, 0) top-left, (1, 1)
bottom-right). Keras has no such format (its ``center_yxhw`` is ``[cy, cx, h, w]``),
so this module is the one place that converts to and from it. Everything else
is delegated to ``keras.utils.bounding_boxes.convert_format``.

Formats understood by :func:`to_target` / :func:`from_target`:

===============  ====================================  ==========================
name             layout                                note
===============  ====================================  ==========================
``"target"``     ``[cx, cy, h, w]`` relative           the target vector's box
``"xyxy"``       ``[x1, y1, x2, y2]`` pixels           what most annotators write
``"rel_xyxy"``   ``[x1, y1, x2, y2]`` relative         ``box_xyxy`` of exports
``"yolo"``       ``[cx, cy, w, h]`` relative           YOLO label files
``"coco"``       ``[x, y, w, h]`` pixels               COCO ``bbox``
``"tfds"``       ``[ymin, xmin, ymax, xmax]`` relative  ``tfds.features.BBox``
===============  ====================================  ==========================

Any other format name of ``keras.utils.bounding_boxes.convert_format`` is also
accepted (``"yxyx"``, ``"center_xywh"``, ``"rel_yxyx"``...).
"""

import numpy as np
import keras
from keras import ops

TARGET = "target"

# Our user-facing names -> Keras's names. "target" is handled by hand below.
_ALIASES = {
    "yolo": "rel_center_xywh",
    "coco": "xywh",
    "tfds": "rel_yxyx",
    "pixel_xyxy": "xyxy",
}
_RELATIVE = ("rel_xyxy", "rel_yxyx", "rel_xywh", "rel_center_xywh")
_KERAS_FORMATS = (
    "xyxy",
    "yxyx",
    "xywh",
    "center_xywh",
    "center_yxhw",
) + _RELATIVE


class BoxError(ValueError):
    """A box that cannot be right: the message says which box and why."""


def _keras_name(fmt):
    fmt = fmt.lower()
    name = _ALIASES.get(fmt, fmt)
    if name not in _KERAS_FORMATS:
        raise ValueError(
            f"Unknown box format {fmt!r}. Known: 'target', "
            f"{', '.join(repr(n) for n in sorted(set(_ALIASES) | set(_KERAS_FORMATS)))}."
        )
    return name


def is_relative(fmt):
    """True when `fmt` holds coordinates relative to the image size."""
    return fmt == TARGET or _keras_name(fmt).startswith("rel_")


def _swap_last_two(boxes):
    # [cx, cy, h, w] <-> [cx, cy, w, h]: the one conversion Keras cannot do.
    a, b, c, d = ops.unstack(boxes, 4, axis=-1)
    return ops.stack([a, b, d, c], axis=-1)


def _convert(boxes, source, target, height, width):
    relative_only = source.startswith("rel_") and target.startswith("rel_")
    if relative_only:
        # Keras insists on a size even between two relative formats; any works.
        height = width = 1.0
    elif height is None or width is None:
        raise ValueError(
            f"Converting between {source!r} and {target!r} needs the image `height` and `width` in pixels."
        )
    return keras.utils.bounding_boxes.convert_format(boxes, source=source, target=target, height=height, width=width)


def to_target(boxes, source, height=None, width=None):
    """Converts boxes from `source` format to the target's `[cx, cy, h, w]`.

    Args:
        boxes: array or tensor of shape `(..., 4)`.
        source: str. A format name (see the module docstring).
        height: number. Image height in pixels; needed for pixel formats.
        width: number. Image width in pixels; needed for pixel formats.

    Returns:
        float32 tensor of shape `(..., 4)`: relative `[b_x, b_y, b_h, b_w]`.
    """
    boxes = ops.convert_to_tensor(boxes, dtype="float32")
    if source == TARGET:
        return boxes
    rel_cxcywh = _convert(boxes, _keras_name(source), "rel_center_xywh", height, width)
    return _swap_last_two(rel_cxcywh)


def from_target(boxes, target, height=None, width=None):
    """Converts target-format boxes `[cx, cy, h, w]` to `target` format.

    Args:
        boxes: array or tensor of shape `(..., 4)` in the target format.
        target: str. A format name (see the module docstring).
        height: number. Image height in pixels; needed for pixel formats.
        width: number. Image width in pixels; needed for pixel formats.

    Returns:
        float32 tensor of shape `(..., 4)`.
    """
    boxes = ops.convert_to_tensor(boxes, dtype="float32")
    if target == TARGET:
        return boxes
    return _convert(_swap_last_two(boxes), "rel_center_xywh", _keras_name(target), height, width)


def map_votes(offsets, sizes):
    """The box each cell of a spatial head's map votes for, `(B, H, W, 4)` target format.

    Cell (i, j) of an `H x W` map votes for a box centred at
    `((j + o_x) / W, (i + o_y) / H)` of size `(h, w)`. `SoftArgmaxBox` averages
    these votes and `losses.map_terms` scores them, so both read them here.

    Args:
        offsets: `(B, H, W, 2)` in (0, 1), as (x, y) within the cell.
        sizes: `(B, H, W, 2)` in (0, 1), as (h, w) relative to the image.
    """
    height, width = offsets.shape[1], offsets.shape[2]
    # Cell corners as constants: column index j along x, row index i along y.
    cols = ops.reshape(ops.arange(width, dtype="float32"), (1, 1, width, 1))
    rows = ops.reshape(ops.arange(height, dtype="float32"), (1, height, 1, 1))
    cx = (cols + offsets[..., 0:1]) / width
    cy = (rows + offsets[..., 1:2]) / height
    return ops.concatenate([cx, cy, sizes], axis=-1)


def target_to_corners(boxes):
    """Target `[cx, cy, h, w]` -> relative `(x1, y1, x2, y2)` as four tensors.

    Written with plain ops (not `convert_format`) because it sits on the hot
    path of the loss, the metrics and exported graphs, where Keras's converter
    would pull its backend switching into every trace.
    """
    cx, cy, h, w = ops.unstack(ops.convert_to_tensor(boxes, "float32"), 4, axis=-1)
    return cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0


def iou(boxes1, boxes2, eps=1e-7):
    """Element-wise IoU of two target-format boxes of shape `(..., 4)`.

    `keras.utils.bounding_boxes.compute_iou` returns the all-pairs matrix; the
    loss and the metrics need the IoU of box i with box i, so it is written here.
    A pair of empty boxes has IoU 0.
    """
    return _iou_and_enclosing(boxes1, boxes2, eps)[0]


def giou(boxes1, boxes2, eps=1e-7):
    """Element-wise generalised IoU (Rezatofighi et al. 2019), in [-1, 1]."""
    value, union, enclosing = _iou_and_enclosing(boxes1, boxes2, eps)
    return value - (enclosing - union) / ops.maximum(enclosing, eps)


def _iou_and_enclosing(boxes1, boxes2, eps):
    ax1, ay1, ax2, ay2 = target_to_corners(boxes1)
    bx1, by1, bx2, by2 = target_to_corners(boxes2)
    # Negative sizes (possible in raw predictions) count as empty boxes.
    area_a = ops.maximum(ax2 - ax1, 0.0) * ops.maximum(ay2 - ay1, 0.0)
    area_b = ops.maximum(bx2 - bx1, 0.0) * ops.maximum(by2 - by1, 0.0)
    inter_w = ops.maximum(ops.minimum(ax2, bx2) - ops.maximum(ax1, bx1), 0.0)
    inter_h = ops.maximum(ops.minimum(ay2, by2) - ops.maximum(ay1, by1), 0.0)
    inter = inter_w * inter_h
    union = area_a + area_b - inter
    value = inter / ops.maximum(union, eps)
    enc_w = ops.maximum(ax2, bx2) - ops.minimum(ax1, bx1)
    enc_h = ops.maximum(ay2, by2) - ops.minimum(ay1, by1)
    return value, union, enc_w * enc_h


# ----------------------------------------------------------------------------
# Validation: numpy, eager. Readers call it on every annotation they load, so
# a wrong box is reported with its file and line before any training starts.

# Corners (x1, y1, x2, y2) in the box's own units, for each format. Written in
# numpy because validation runs once per annotation while loading: going through
# `convert_format` costs ~2.5 ms of eager TensorFlow per box (minutes on COCO),
# this ~20 us. `test_validate_box_agrees_with_keras` keeps the two in step.
_CORNERS = {
    "xyxy": lambda a, b, c, d: (a, b, c, d),
    "yxyx": lambda a, b, c, d: (b, a, d, c),
    "xywh": lambda a, b, c, d: (a, b, a + c, b + d),
    "center_xywh": lambda a, b, c, d: (a - c / 2, b - d / 2, a + c / 2, b + d / 2),
    "center_yxhw": lambda a, b, c, d: (b - d / 2, a - c / 2, b + d / 2, a + c / 2),
    TARGET: lambda a, b, c, d: (a - d / 2, b - c / 2, a + d / 2, b + c / 2),
}


def _corners_numpy(values, fmt):
    name = fmt if fmt == TARGET else _keras_name(fmt)
    return _CORNERS[name.replace("rel_", "", 1)](*values)


def validate_box(box, fmt, height=None, width=None, where="", tolerance=0.0):
    """Checks one box and returns it in the target format (numpy float32).

    Catches: wrong length, non-finite numbers, negative or zero sizes, swapped
    corners, coordinates outside the image, and pixel-looking values where
    relative ones are expected.

    Args:
        box: sequence of 4 numbers in `fmt`.
        fmt: str. The format of `box`.
        height: int. Image height in pixels (pixel formats; optional otherwise).
        width: int. Image width in pixels.
        where: str. Names the box in error messages (e.g. `"labels.csv:12"`).
        tolerance: float. How far outside the image, as a fraction of the
            image size, a box may reach before it is an error. Boxes within the
            tolerance are clipped to the image.

    Raises:
        BoxError: naming `where` and the problem.
    """
    prefix = f"{where}: " if where else ""
    values = np.asarray(box, dtype=np.float64).reshape(-1)
    if values.size != 4:
        raise BoxError(f"{prefix}a box needs 4 numbers, got {values.size}: {list(values)}")
    if not np.all(np.isfinite(values)):
        raise BoxError(f"{prefix}box has a non-finite value: {list(values)}")
    relative = is_relative(fmt)
    # Relative boxes may poke a little past the edge (caught below, with its own
    # message); values past 2 can only be pixels given to a relative format.
    if relative and np.any(np.abs(values) > 2.0):
        raise BoxError(
            f"{prefix}box {list(values)} is given as {fmt!r} (relative, 0..1) but "
            "has values far above 1: these look like pixels. Use a pixel format "
            "(e.g. 'xyxy' or 'coco') or divide by the image size."
        )
    if not relative and (height is None or width is None):
        raise BoxError(f"{prefix}format {fmt!r} is in pixels: the image size is needed")
    if fmt in ("xyxy", "rel_xyxy", "pixel_xyxy", "yxyx", "rel_yxyx", "tfds"):
        if fmt in ("yxyx", "rel_yxyx", "tfds"):
            y1, x1, y2, x2 = values
        else:
            x1, y1, x2, y2 = values
        if x2 < x1 or y2 < y1:
            raise BoxError(
                f"{prefix}box corners are swapped (x1={x1:g}, y1={y1:g}, x2={x2:g}, "
                f"y2={y2:g}): the first corner must be the top-left one"
            )
    h = 1.0 if relative else float(height)
    w = 1.0 if relative else float(width)
    x1, y1, x2, y2 = _corners_numpy(values, fmt)
    x1, x2, y1, y2 = x1 / w, x2 / w, y1 / h, y2 / h
    bh, bw = y2 - y1, x2 - x1
    if bh <= 0 or bw <= 0:
        raise BoxError(
            f"{prefix}box has {'zero' if min(bh, bw) == 0 else 'negative'} size "
            f"(height {bh * h:g}, width {bw * w:g} {'relative' if relative else 'pixels'})"
        )
    if x1 < -tolerance or y1 < -tolerance or x2 > 1 + tolerance or y2 > 1 + tolerance:
        size = "" if relative else f", {w:g}x{h:g} px"
        raise BoxError(
            f"{prefix}box [{', '.join(f'{float(v):g}' for v in values)}] ({fmt}) lies outside the image{size}: "
            f"relative corners x1={x1:.3f}, y1={y1:.3f}, x2={x2:.3f}, y2={y2:.3f}"
        )
    x1, y1 = max(x1, 0.0), max(y1, 0.0)
    x2, y2 = min(x2, 1.0), min(y2, 1.0)
    if x2 <= x1 or y2 <= y1:
        raise BoxError(f"{prefix}box has no area inside the image")
    return np.array([(x1 + x2) / 2, (y1 + y2) / 2, y2 - y1, x2 - x1], dtype=np.float32)
