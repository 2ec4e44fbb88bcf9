"""THE box and letterbox geometry: every conversion between box forms, written once.

A box in the target vector is ``[b_x, b_y, b_h, b_w]``: its centre, then **height before
width**, relative to the image ((0, 0) top-left, (1, 1) bottom-right). This module converts it
to corners and back, places an image in a letterbox and moves boxes in and out of it, measures
the IoU of two boxes and validates an annotated box in any format::

    target_to_corners(box)                -> (x1, y1, x2, y2)         arrays and tensors
    corners_to_target(x1, y1, x2, y2)     -> (b_x, b_y, b_h, b_w)     arrays, tensors, floats
    letterbox_geometry(h, w, out_h, out_w)     -> ints (new_h, new_w, top, left)
    letterbox_geometry_tf(h, w, out_h, out_w)  -> int32 tensors, the same numbers
    boxes_to_original(box, h, w, size, method)     model input -> original image (numpy)
    boxes_to_original_tf(box, h, w, size, method)  the same in TensorFlow (exported graphs)
    boxes_to_letterbox(box, h, w, size, method)    original image -> model input (numpy)
    boxes_to_letterbox_tf(box, h, w, size, method) the same in TensorFlow (data pipeline)
    iou(boxes1, boxes2)                   -> IoU of box i with box i (numpy float32)
    validate_box(box, fmt, h, w, ...)     -> one annotated box checked, in the target format

Functions that are only arithmetic and indexing take numpy arrays and TensorFlow (or Keras)
tensors alike and are written once; where numpy and TensorFlow need different operations
(rounding, clipping, dtype casts), the TensorFlow twin (``*_tf``) sits next to the numpy one,
shares its arithmetic, and imports TensorFlow inside the function: this module imports with
numpy alone, so the file readers and ``locnet_tf.runtime`` (no TensorFlow on a device) use
it. ``tests/test_geometry.py`` checks each pair against each other.

Box formats known to `validate_box` (and to ``locnet_tf.model.boxes.to_target``/``from_target``,
which convert them through Keras):

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

and the other names of ``keras.utils.bounding_boxes.convert_format`` (``"yxyx"``,
``"center_xywh"``, ``"rel_yxyx"``...).
"""

import numpy as np

from locnet_tf.core.errors import BoxError

TARGET = "target"

# Our user-facing names -> Keras's names. "target" is not a Keras format.
_ALIASES = {
    "yolo": "rel_center_xywh",
    "coco": "xywh",
    "tfds": "rel_yxyx",
    "pixel_xyxy": "xyxy",
}
_RELATIVE = ("rel_xyxy", "rel_yxyx", "rel_xywh", "rel_center_xywh")
KERAS_FORMATS = (
    "xyxy",
    "yxyx",
    "xywh",
    "center_xywh",
    "center_yxhw",
) + _RELATIVE

_F = np.float32


def keras_format(fmt):
    """A box format name (ours or Keras's) -> Keras's name for it; ValueError naming the known ones."""
    fmt = fmt.lower()
    name = _ALIASES.get(fmt, fmt)
    if name not in KERAS_FORMATS:
        raise ValueError(
            f"Unknown box format {fmt!r}. Known: 'target', "
            f"{', '.join(repr(n) for n in sorted(set(_ALIASES) | set(KERAS_FORMATS)))}."
        )
    return name


def is_relative(fmt):
    """True when `fmt` holds coordinates relative to the image size."""
    return fmt == TARGET or keras_format(fmt).startswith("rel_")


# ----------------------------------------------------------------------------
# Target <-> corners: arithmetic only, for arrays and tensors alike.


def _components(box):
    # `box[..., i]` works on numpy arrays and TensorFlow/Keras tensors; a list becomes an array.
    if not hasattr(box, "shape"):
        box = np.asarray(box)
    return box[..., 0], box[..., 1], box[..., 2], box[..., 3]


def target_to_corners(box):
    """Target `[b_x, b_y, b_h, b_w]` `(..., 4)` -> the corners `(x1, y1, x2, y2)`, as four values.

    In the box's own units and dtype (relative for a target box; a numpy array, a TensorFlow or
    a Keras tensor, unchanged in kind). `np.stack(..., axis=-1)` (or `tf.stack`) makes
    `[x1, y1, x2, y2]` of them.
    """
    cx, cy, bh, bw = _components(box)
    return cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2


def corners_to_target(x1, y1, x2, y2):
    """Corners -> `(b_x, b_y, b_h, b_w)`, as four values (numbers, arrays or tensors)."""
    return (x1 + x2) / 2, (y1 + y2) / 2, y2 - y1, x2 - x1


# ----------------------------------------------------------------------------
# The letterbox: where an image lands in the model input, and its boxes with it.


def _out_size(image_size):
    return (image_size, image_size) if np.isscalar(image_size) else tuple(image_size)


def letterbox_geometry(height, width, out_h, out_w):
    """Where a `height x width` image lands when letterboxed into `out_h x out_w`.

    Scaled by the smaller ratio (the aspect kept), rounded half to even, at least one pixel,
    centred: float32 maths, as `letterbox_geometry_tf` (the data pipeline's) computes it.

    Returns:
        ints `(new_h, new_w, top, left)`: the resized image's size and its offset inside the
        padded output.
    """
    h, w = _F(height), _F(width)
    scale = min(_F(out_h) / h, _F(out_w) / w)
    new_h = int(np.clip(np.round(h * scale), 1, out_h))
    new_w = int(np.clip(np.round(w * scale), 1, out_w))
    return new_h, new_w, (out_h - new_h) // 2, (out_w - new_w) // 2


def letterbox_geometry_tf(height, width, out_h, out_w):
    """`letterbox_geometry` in TensorFlow (height and width may be tensors): int32 tensors."""
    import tensorflow as tf

    h, w = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    scale = tf.minimum(out_h / h, out_w / w)
    new_h = tf.clip_by_value(tf.cast(tf.round(h * scale), tf.int32), 1, out_h)
    new_w = tf.clip_by_value(tf.cast(tf.round(w * scale), tf.int32), 1, out_w)
    return new_h, new_w, (out_h - new_h) // 2, (out_w - new_w) // 2


def _from_letterbox(box, new_h, new_w, top, left, out_h, out_w):
    # Relative to the model input -> relative to the original: x = (x' * out_w - left) / new_w.
    # All float32 (numpy scalars or tensors); the numpy and TensorFlow versions share these lines.
    cx, cy, bh, bw = _components(box)
    return (
        (cx * out_w - left) / new_w,
        (cy * out_h - top) / new_h,
        bh * out_h / new_h,
        bw * out_w / new_w,
    )


def _to_letterbox(box, new_h, new_w, top, left, out_h, out_w):
    # Relative to the original -> relative to the model input: x' = (left + x * new_w) / out_w.
    cx, cy, bh, bw = _components(box)
    return (
        (left + cx * new_w) / out_w,
        (top + cy * new_h) / out_h,
        bh * new_h / out_h,
        bw * new_w / out_w,
    )


def _check_method(method):
    if method not in ("stretch", "letterbox"):
        raise ValueError(f"resize method must be 'stretch' or 'letterbox', got {method!r}.")


def _map_numpy(move, box, height, width, image_size, method):
    _check_method(method)
    box = np.asarray(box, _F)
    if method == "stretch":
        return box  # relative coordinates do not change when each axis is scaled
    out_h, out_w = _out_size(image_size)
    placed = [_F(v) for v in letterbox_geometry(height, width, out_h, out_w)]
    return np.stack(move(box, *placed, _F(out_h), _F(out_w)), axis=-1).astype(_F)


def _map_tf(move, box, height, width, image_size, method):
    import tensorflow as tf

    _check_method(method)
    box = tf.cast(tf.convert_to_tensor(box), tf.float32)  # cast: a float64 tensor is welcome too
    if method == "stretch":
        return box
    out_h, out_w = _out_size(image_size)
    placed = [tf.cast(v, tf.float32) for v in letterbox_geometry_tf(height, width, out_h, out_w)]
    return tf.stack(move(box, *placed, float(out_h), float(out_w)), axis=-1)


def boxes_to_original(box, height, width, image_size, method="stretch"):
    """Target-format boxes on the model input -> the same boxes on the original image (numpy).

    A no-op for `"stretch"` (relative coordinates do not change); for `"letterbox"` the exact
    undo of the scaling and padding of `letterbox_geometry`.

    Args:
        box: `(..., 4)` `[b_x, b_y, b_h, b_w]` relative to the model input.
        height: int. Original image height in pixels.
        width: int. Original image width in pixels.
        image_size: int or (height, width). The model input size.
        method: `"stretch"` or `"letterbox"`.

    Returns:
        float32 array `(..., 4)`: the boxes relative to the original image.
    """
    return _map_numpy(_from_letterbox, box, height, width, image_size, method)


def boxes_to_original_tf(box, height, width, image_size, method="stretch"):
    """`boxes_to_original` in TensorFlow (height and width may be tensors): a float32 tensor."""
    return _map_tf(_from_letterbox, box, height, width, image_size, method)


def boxes_to_letterbox(box, height, width, image_size, method="stretch"):
    """Target-format boxes on the original image -> the same boxes on the model input (numpy).

    The inverse of `boxes_to_original`, with the same arguments: boxes scaled by the resized
    size and shifted by the padding (a no-op for `"stretch"`).
    """
    return _map_numpy(_to_letterbox, box, height, width, image_size, method)


def boxes_to_letterbox_tf(box, height, width, image_size, method="stretch"):
    """`boxes_to_letterbox` in TensorFlow (the data pipeline's resize): a float32 tensor."""
    return _map_tf(_to_letterbox, box, height, width, image_size, method)


# ----------------------------------------------------------------------------
# IoU on arrays. The loss and the metrics use `locnet_tf.model.boxes.iou` on tensors, the same maths
# through Keras ops; tests/test_geometry.py keeps the two equal.


def iou(boxes1, boxes2, eps=1e-7):
    """Element-wise IoU of two target-format boxes `(..., 4)`: float32 numpy array.

    Box i with box i (not all pairs). Negative sizes count as empty boxes; a pair of empty
    boxes has IoU 0.
    """
    ax1, ay1, ax2, ay2 = target_to_corners(np.asarray(boxes1, _F))
    bx1, by1, bx2, by2 = target_to_corners(np.asarray(boxes2, _F))
    area_a = np.maximum(ax2 - ax1, _F(0)) * np.maximum(ay2 - ay1, _F(0))
    area_b = np.maximum(bx2 - bx1, _F(0)) * np.maximum(by2 - by1, _F(0))
    inter_w = np.maximum(np.minimum(ax2, bx2) - np.maximum(ax1, bx1), _F(0))
    inter_h = np.maximum(np.minimum(ay2, by2) - np.maximum(ay1, by1), _F(0))
    inter = inter_w * inter_h
    union = area_a + area_b - inter
    return np.asarray(inter / np.maximum(union, _F(eps)), _F)


# ----------------------------------------------------------------------------
# Validation: numpy, eager. Readers call it on every annotation they load, so a wrong box is
# reported with its file and line before any training starts.

# Corners (x1, y1, x2, y2) in the box's own units, for each format (Keras's names without
# "rel_"). Written in numpy because validation runs once per annotation while loading: going
# through Keras's `convert_format` costs ~2.5 ms of eager TensorFlow per box (minutes on COCO),
# this ~20 us. tests/test_boxes.py `test_validate_box_agrees_with_keras` keeps the two in step.
_CORNERS = {
    "xyxy": lambda a, b, c, d: (a, b, c, d),
    "yxyx": lambda a, b, c, d: (b, a, d, c),
    "xywh": lambda a, b, c, d: (a, b, a + c, b + d),
    "center_xywh": lambda a, b, c, d: (a - c / 2, b - d / 2, a + c / 2, b + d / 2),
    "center_yxhw": lambda a, b, c, d: (b - d / 2, a - c / 2, b + d / 2, a + c / 2),
    TARGET: lambda a, b, c, d: target_to_corners(np.array([a, b, c, d])),
}


def _corners(values, fmt):
    name = fmt if fmt == TARGET else keras_format(fmt)
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
    x1, y1, x2, y2 = _corners(values, fmt)
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
    return np.array(corners_to_target(x1, y1, x2, y2), dtype=np.float32)
