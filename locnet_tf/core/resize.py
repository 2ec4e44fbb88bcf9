"""The training resize without TensorFlow: `resize(image, size, method)` -> uint8 `[S, S, 3]`.

**Resize.** `resize` is TensorFlow's `tf.image.resize(..., antialias=True)`
(bilinear, the kernel widened when shrinking) followed by the pipeline's
rounding to uint8, re-done in numpy with TensorFlow's float32 arithmetic in
TensorFlow's order, so its output is bit-identical (tests/test_images.py
compares them). It is hand-written because no numpy or Pillow function is that
resize: Pillow's antialiased `BILINEAR` uses the same kernel but rounds to 8
bits between its two passes and differs by one grey level in about 10% of the
pixels (measured), and a model should see at inference exactly the pixels it
was evaluated on.
"""

import functools

import numpy as np

from locnet_tf.core import geometry


_F = np.float32


@functools.lru_cache(maxsize=64)
def _spans(output_size, input_size):
    """Start index and weights of each output pixel along one axis.

    TensorFlow's `ComputeSpansCore` (kernels/image/scale_and_translate_op.cc)
    for the triangle kernel with antialiasing and no translation, in its
    float32 arithmetic: scale = out / in, the kernel widened by in / out when
    shrinking, weights normalised to sum 1.

    Returns:
        (int64 `[out, span]` input indices, float32 `[out, span]` weights);
        indices past the edge are clamped and carry weight 0.
    """
    scale = _F(output_size) / _F(input_size)
    inv_scale = _F(1.0 / np.float64(scale))  # C++: float inv_scale = 1.0 / scale (in double)
    kernel_scale = max(inv_scale, _F(1.0))
    span = min(2 * int(np.ceil(kernel_scale)) + 1, int(input_size))
    one_over_kernel_scale = _F(1.0) / kernel_scale
    sample = (np.arange(output_size, dtype=_F) + _F(0.5)) * inv_scale
    start = np.ceil((sample - kernel_scale) - _F(0.5)).astype(np.int64)
    end = np.floor((sample + kernel_scale) - _F(0.5)).astype(np.int64)
    start = np.clip(start, 0, input_size - 1)
    end = np.clip(end, 0, input_size - 1) + 1
    offsets = np.arange(span)
    index = start[:, None] + offsets
    inside = index < end[:, None]
    position = (index.astype(_F) + _F(0.5)) - sample[:, None]
    distance = np.abs(position * one_over_kernel_scale)
    weights = np.where(inside & (distance < _F(1.0)), _F(1.0) - distance, _F(0.0)).astype(_F)
    total = np.zeros(output_size, _F)
    for k in range(span):  # summed in order, as the C++ loop does
        total = total + weights[:, k]
    weights = weights * (_F(1.0) / total)[:, None]
    return np.minimum(index, input_size - 1), weights


def _resize_float(image, height, width):
    """`tf.image.resize(image, (height, width), antialias=True)` (bilinear) as float32.

    Rows first, then columns, each output value accumulated over its span in
    order: TensorFlow's `GatherRows` / `GatherColumns`, so the sums round alike.
    """
    in_h, in_w, channels = image.shape
    row_index, row_weights = _spans(height, in_h)
    col_index, col_weights = _spans(width, in_w)
    flat = image.reshape(in_h, in_w * channels)
    rows = np.zeros((height, in_w * channels), _F)
    term = np.empty_like(rows)
    # In blocks of output rows, so the running sums stay in the CPU cache.
    block = 16
    for top in range(0, height, block):
        bottom = min(top + block, height)
        acc, tmp = rows[top:bottom], term[: bottom - top]
        for k in range(row_weights.shape[1]):
            weights = row_weights[top:bottom, k, None]
            if not weights.any():
                continue  # a tap past every span's end: adding 0 * x changes no sum
            tmp[...] = flat[row_index[top:bottom, k]]
            tmp *= weights
            acc += tmp
    # Columns: transpose once so each tap gathers whole rows.
    columns = np.ascontiguousarray(rows.reshape(height, in_w, channels).transpose(1, 0, 2))
    columns = columns.reshape(in_w, height * channels)
    out = np.zeros((width, height * channels), _F)
    term = np.empty_like(out)
    for k in range(col_weights.shape[1]):
        if not col_weights[:, k].any():
            continue
        np.take(columns, col_index[:, k], axis=0, out=term)
        term *= col_weights[:, k, None]
        out += term
    return out.reshape(width, height, channels).transpose(1, 0, 2)


def _to_uint8(values):
    # The pipeline's rounding: round half to even (tf.round), clip, cast.
    return np.clip(np.round(values), 0, 255).astype(np.uint8)


def resize(image, image_size, method="stretch", pad_value=0):
    """Resizes a uint8 `[H, W, 3]` image exactly as the training pipeline does.

    Args:
        image: uint8 array `[H, W, C]`.
        image_size: int or (height, width).
        method: `"stretch"` or `"letterbox"` (keep the aspect, centre, pad
            with `pad_value`).

    Returns:
        uint8 `[out_h, out_w, C]`, equal to
        `locnet_tf.data.pipeline.resize({"image": image, ...}, image_size, method)["image"]`.
    """
    out_h, out_w = (image_size, image_size) if np.isscalar(image_size) else image_size
    out_h, out_w = int(out_h), int(out_w)
    if method not in ("stretch", "letterbox"):
        raise ValueError(f"resize method must be 'stretch' or 'letterbox', got {method!r}.")
    image = np.asarray(image)
    height, width = image.shape[:2]
    if method == "stretch":
        new_h, new_w, top, left = out_h, out_w, 0, 0
    else:
        new_h, new_w, top, left = geometry.letterbox_geometry(height, width, out_h, out_w)
    if (new_h, new_w) == (height, width):
        resized = image.astype(np.uint8, copy=False)
    else:
        resized = _to_uint8(_resize_float(image, new_h, new_w))
    if method == "stretch":
        return resized
    out = np.full((out_h, out_w, image.shape[2]), pad_value, np.uint8)
    out[top : top + new_h, left : left + new_w] = resized
    return out
