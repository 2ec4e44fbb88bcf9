"""Box formats through Keras, a spatial head's box votes, and IoU / GIoU on tensors.

The target vector stores a box as ``[b_x, b_y, b_h, b_w]``: the centre, then
**height before width**, all relative to the image ((0, 0) top-left, (1, 1)
bottom-right). Keras has no such format (its ``center_yxhw`` is ``[cy, cx, h, w]``),
so :func:`to_target` / :func:`from_target` swap the last two and delegate the rest to
``keras.utils.bounding_boxes.convert_format``; the format names (``"target"``, ``"xyxy"``,
``"yolo"``, ``"coco"``, ``"tfds"`` and Keras's own) are listed in
``locnet_tf.core.geometry``, which also holds the geometry that needs no Keras: corners,
the letterbox, IoU on arrays and the validation of annotated boxes (``validate_box``).
"""

import keras
from keras import ops

from locnet_tf.core.geometry import TARGET, keras_format, target_to_corners


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
    rel_cxcywh = _convert(boxes, keras_format(source), "rel_center_xywh", height, width)
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
    return _convert(_swap_last_two(boxes), "rel_center_xywh", keras_format(target), height, width)


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
    ax1, ay1, ax2, ay2 = target_to_corners(ops.convert_to_tensor(boxes1, "float32"))
    bx1, by1, bx2, by2 = target_to_corners(ops.convert_to_tensor(boxes2, "float32"))
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
