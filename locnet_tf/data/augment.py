"""Training augmentation as pure `dict -> dict` functions on example dicts (box-consistent).

    augment(example, seed, config=AugmentConfig())   flip, zoom, aspect, shift, colour
    crop_around_object(example, seed, size)          a window at the image's own scale
                                                     that holds the object (progressive
                                                     resizing's crop mode)

Both are stateless (`tf.random.stateless_*` on the given seed) and work eagerly
and inside `tf.data.Dataset.map`. `locnet_tf.data.pipeline.make_dataset` chains
them after decoding and resizing; they are re-exported there.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from locnet_tf.core import geometry
from locnet_tf.core.records import BOX, CLASS_ID, IMAGE, PRESENT


def _to_uint8(image):
    return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the training augmentation (all box-consistent).

    flip: float. Probability of a horizontal flip.
    zoom: (min, max). Scale factor; > 1 zooms in (crops), < 1 zooms out
        (the uncovered border is filled with `fill_value`).
    aspect: (min, max). Extra horizontal / vertical stretch ratio.
    translate: float. Largest shift of the view, as a fraction of the image.
    brightness: float. Largest brightness change, as a fraction of 255.
    contrast: (min, max). Contrast factor.
    saturation: (min, max). Saturation factor.
    hue: float. Largest hue shift, in turns (0.5 = opposite colour).
    min_visible: float. An object with less than this fraction of its box
        area left in view becomes background (`present=False`); otherwise its
        box is clipped to the view. A box that keeps under 40% of its area is
        mostly a wrong box: most of what it labels is no longer in the image.
    fill_value: float. Grey level outside the original image.
    """

    flip: float = 0.5
    zoom: tuple = (0.8, 1.25)
    aspect: tuple = (0.9, 1.1)
    translate: float = 0.1
    brightness: float = 0.15
    contrast: tuple = (0.75, 1.25)
    saturation: tuple = (0.7, 1.3)
    hue: float = 0.03
    min_visible: float = 0.4
    fill_value: float = 0.0


def _uniform(seed, lo, hi, shape=()):
    return tf.random.stateless_uniform(shape, seed, minval=lo, maxval=hi)


def augment(example, seed, config=AugmentConfig()):
    """Random flip, zoom / crop, translation and colour, with the box moved exactly.

    Geometry is one crop window per image, taken with `tf.image.crop_and_resize`:
    a window smaller than the image zooms in, larger zooms out, shifted
    translates. The box is mapped through the same affine transform, clipped to
    the view, and the object becomes background when less than
    `config.min_visible` of its box area stays in view.

    Why not Keras's box-aware layers (`RandomZoom`, `RandomTranslation`,
    `RandomCrop` with `bounding_boxes`)? They clip boxes to the image and do
    not return the unclipped box, so the fraction left in view, needed for the
    "mostly out of view -> background" rule, cannot be known; and they are
    slower per image here (see `benchmarks/data_pipeline.py`).

    Args:
        example: example dict with a uint8 `"image"` `[H, W, 3]`.
        seed: int tensor of shape `[2]` (a stateless-random seed). The same
            seed gives the same augmentation.
        config: AugmentConfig.

    Returns:
        The example with augmented uint8 `"image"` (same size), `"box"` and
        `"present"`.
    """
    seeds = tf.unstack(tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 10))
    image = tf.cast(example[IMAGE], tf.float32)
    shape = tf.shape(image)
    h, w = shape[0], shape[1]
    fh, fw = tf.cast(h, tf.float32), tf.cast(w, tf.float32)

    # The view window [wy0, wx0] + [wh, ww] in relative input coordinates.
    zoom = tf.exp(_uniform(seeds[0], np.log(config.zoom[0]), np.log(config.zoom[1])))
    aspect = tf.exp(_uniform(seeds[1], np.log(config.aspect[0]), np.log(config.aspect[1])))
    ww, wh = tf.sqrt(aspect) / zoom, 1.0 / (tf.sqrt(aspect) * zoom)
    shift = _uniform(seeds[2], -config.translate, config.translate, [2])
    wx0, wy0 = 0.5 + shift[0] - ww / 2, 0.5 + shift[1] - wh / 2

    # crop_and_resize samples output pixel j at input pixel y1*(H-1) + j*(y2-y1)*(H-1)/(H-1)
    # (corner-aligned), but relative boxes use pixel centres: output pixel j
    # shows relative position wy0 + (j + 0.5) / H * wh, i.e. input pixel
    # (wy0 + (j + 0.5) / H * wh) * H - 0.5. Matching j = 0 and j = H - 1 gives:
    def corner_aligned(start, extent, size):
        first = start * size + extent / 2.0 - 0.5
        last = first + extent * (size - 1.0)
        return first / tf.maximum(size - 1.0, 1.0), last / tf.maximum(size - 1.0, 1.0)

    y1, y2 = corner_aligned(wy0, wh, fh)
    x1, x2 = corner_aligned(wx0, ww, fw)
    image = tf.image.crop_and_resize(
        image[None],
        tf.stack([[y1, x1, y2, x2]]),
        [0],
        tf.stack([h, w]),
        extrapolation_value=config.fill_value,
    )[0]

    # The box's corners relative to the view window.
    bx1, by1, bx2, by2 = geometry.target_to_corners(tf.cast(example[BOX], tf.float32))
    bx1, by1 = (bx1 - wx0) / ww, (by1 - wy0) / wh
    bx2, by2 = (bx2 - wx0) / ww, (by2 - wy0) / wh
    flip = _uniform(seeds[3], 0.0, 1.0) < config.flip
    image = tf.cond(flip, lambda: tf.image.flip_left_right(image), lambda: image)
    bx1, bx2 = tf.where(flip, 1.0 - bx2, bx1), tf.where(flip, 1.0 - bx1, bx2)
    area = (bx2 - bx1) * (by2 - by1)
    cx1, cy1 = tf.clip_by_value(bx1, 0.0, 1.0), tf.clip_by_value(by1, 0.0, 1.0)
    cx2, cy2 = tf.clip_by_value(bx2, 0.0, 1.0), tf.clip_by_value(by2, 0.0, 1.0)
    visible = tf.maximum(cx2 - cx1, 0.0) * tf.maximum(cy2 - cy1, 0.0) / tf.maximum(area, 1e-12)
    present = tf.logical_and(tf.cast(example[PRESENT], tf.bool), visible >= config.min_visible)
    box = tf.stack(geometry.corners_to_target(cx1, cy1, cx2, cy2)) * tf.cast(present, tf.float32)

    # Colour, on 0..1 floats as tf.image expects.
    image = image / 255.0
    if config.brightness:
        image = tf.image.stateless_random_brightness(image, config.brightness, seeds[4])
    if config.contrast:
        image = tf.image.stateless_random_contrast(image, *config.contrast, seeds[5])
    if config.saturation:
        image = tf.image.stateless_random_saturation(image, *config.saturation, seeds[6])
    if config.hue:
        image = tf.image.stateless_random_hue(image, config.hue, seeds[7])

    out = dict(example)
    out[IMAGE] = tf.ensure_shape(_to_uint8(image * 255.0), example[IMAGE].shape)
    out[BOX] = box
    out[PRESENT] = present
    out[CLASS_ID] = tf.where(present, tf.cast(example[CLASS_ID], tf.int32), 0)
    return out


def crop_around_object(example, seed, size):
    """A random `size` x `size` window of the image at its own scale, holding the whole object.

    Progressive resizing's cheap first epochs (`--progressive-mode crop`): a
    window of a 128 px image costs what the image resized to `size` costs, but
    keeps the object at the pixel size the full-size model will see, where
    the resized image shrinks it (and a network's features are tuned to the
    size of things in pixels). An object larger than `size` gets the smallest
    square window that holds it, resized to `size`; a background image gets
    any window. The window is whole pixels, so a window of `size` is copied,
    not resampled.

    Hand-written because Keras's `RandomCrop` (with `bounding_boxes`) picks
    the window without regard to the box: it would cut objects, and clipping
    the box would then mislabel what is left in view.

    Args:
        example: example dict with a uint8 `"image"` `[H, W, 3]`, H and W >= `size`.
        seed: int tensor of shape `[2]` (a stateless-random seed).
        size: int. Output height and width in pixels.

    Returns:
        The example with a `[size, size, 3]` uint8 `"image"` and its `"box"`
        relative to the window.
    """
    image = example[IMAGE]
    shape = tf.shape(image)
    h, w = shape[0], shape[1]
    fh, fw = tf.cast(h, tf.float32), tf.cast(w, tf.float32)
    present = tf.cast(example[PRESENT], tf.bool)
    box = tf.cast(example[BOX], tf.float32)
    cx, cy, bh, bw = tf.unstack(box, 4)
    rx1, ry1, rx2, ry2 = geometry.target_to_corners(box)
    # The object's pixel extent, rounded outwards; a background image has none.
    x1 = tf.where(present, tf.cast(tf.floor(rx1 * fw), tf.int32), w)
    x2 = tf.where(present, tf.cast(tf.math.ceil(rx2 * fw), tf.int32), 0)
    y1 = tf.where(present, tf.cast(tf.floor(ry1 * fh), tf.int32), h)
    y2 = tf.where(present, tf.cast(tf.math.ceil(ry2 * fh), tf.int32), 0)
    x1, y1 = tf.maximum(x1, 0), tf.maximum(y1, 0)
    x2, y2 = tf.minimum(x2, w), tf.minimum(y2, h)
    window = tf.minimum(tf.maximum(tf.maximum(size, x2 - x1), y2 - y1), tf.minimum(h, w))
    # Window origins that keep [x1, x2) inside: [x2 - window, x1], within the image.
    seeds = tf.unstack(tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 2))

    def origin(lo, hi, seed_):
        return tf.random.stateless_uniform([], seed_, minval=lo, maxval=hi + 1, dtype=tf.int32)

    x0 = origin(tf.maximum(x2 - window, 0), tf.minimum(x1, w - window), seeds[0])
    y0 = origin(tf.maximum(y2 - window, 0), tf.minimum(y1, h - window), seeds[1])
    crop = image[y0 : y0 + window, x0 : x0 + window]
    crop = tf.cond(
        window > size,
        lambda: _to_uint8(tf.image.resize(tf.cast(crop, tf.float32), [size, size], antialias=True)),
        lambda: crop,
    )
    fwin = tf.cast(window, tf.float32)
    left, top = tf.cast(x0, tf.float32), tf.cast(y0, tf.float32)
    box = tf.stack([(cx * fw - left) / fwin, (cy * fh - top) / fwin, bh * fh / fwin, bw * fw / fwin])
    out = dict(example)
    out[IMAGE] = tf.ensure_shape(crop, [size, size, 3])
    out[BOX] = box * tf.cast(present, tf.float32)
    return out
