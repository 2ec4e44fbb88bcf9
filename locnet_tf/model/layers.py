"""The model's own Keras layers, registered serializable under their 0.2.0 names (`locnet_tf>TargetVector`,
`locnet_tf>SoftArgmaxBox`), so every saved `.keras` file loads.

`TargetVector` concatenates the heads into `[p_c, b_x, b_y, b_h, b_w, c_1..c_K]` and carries the
model's description in its config (class names, presence threshold, resize, build arguments);
`SoftArgmaxBox` is the spatial head's box: the soft arg-max of a "where" map over per-cell boxes.
`locnet_tf.model.network` builds the model with them.
"""

import keras
from keras import layers
from keras import ops

from locnet_tf.model import boxes as box_lib
from locnet_tf.model import target as target_lib


# How an image of any shape becomes the square input (`locnet_tf.core.resize`).
RESIZE_METHODS = ("stretch", "letterbox")


@keras.saving.register_keras_serializable(package="locnet_tf")
class TargetVector(layers.Layer):
    """Joins the three heads into the target vector and records what the model is.

    The model's description lives in this layer's config, so a saved `.keras`
    file (and every export made from it) carries it wherever it is copied:
    the class names, the calibrated presence threshold, the resize its inputs
    need (`"stretch"` or `"letterbox"`) and the arguments `build_model` was
    called with. The input size is the model's own input shape.

    Why here: every locnet_tf model has this layer, it is registered and
    serialized with its config (saved in the `.keras` file's config.json,
    restored by `from_config`), and it already held the class names and the
    threshold. A separate no-op layer would be a second thing to find and keep;
    a subclassed `keras.Model` would make every model a custom class to load.

    Args:
        class_names: list of str. Class names in target order.
        presence_threshold: float. `p_c` at or above which an object is reported.
        resize: `"stretch"`, `"letterbox"`, or None: saved by a version before
            models recorded it (0.2.0 and earlier; the run's config.json says).
        build_arguments: dict or None. The architecture `build_model` built
            (`build_arguments(model)` reads it); None in models of those versions.
    """

    def __init__(
        self,
        class_names=target_lib.DEFAULT_CLASSES,
        presence_threshold=0.5,
        resize=None,
        build_arguments=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if resize is not None and resize not in RESIZE_METHODS:
            raise ValueError(f"resize must be one of {RESIZE_METHODS} (or None), got {resize!r}.")
        self.class_names = [str(n) for n in class_names]
        self.presence_threshold = float(presence_threshold)
        self.resize = resize
        self.build_arguments = None if build_arguments is None else dict(build_arguments)

    def call(self, inputs):
        if len(inputs) == 2:
            # One class: c_1 is 1 by definition (a softmax over one entry would be
            # a constant with a warning on every call).
            p_c, box = inputs
            classes = keras.ops.ones_like(p_c)
        else:
            p_c, box, classes = inputs
        return keras.ops.concatenate([p_c, box, classes], axis=-1)

    def compute_output_shape(self, input_shapes):
        batch = input_shapes[0][0]
        return (batch, 5 + len(self.class_names))

    def get_config(self):
        config = super().get_config()
        config.update(
            class_names=list(self.class_names),
            presence_threshold=self.presence_threshold,
            resize=self.resize,
            build_arguments=None if self.build_arguments is None else dict(self.build_arguments),
        )
        return config


@keras.saving.register_keras_serializable(package="locnet_tf")
class SoftArgmaxBox(layers.Layer):
    """Reads one box off a spatial map: where the object is, as a soft arg-max.

    Each cell (i, j) of an `H x W` map votes with weight `softmax(logits)_ij`
    for a box centred at `((j + ox_ij) / W, (i + oy_ij) / H)` of size
    `(h_ij, w_ij)`; the box is the weighted mean of the votes. The same weights
    pool the features for the class head. Convolutions see *where* things are,
    so this learns the box far faster than a dense regression from flattened
    features, and it is made only of ops every TFLite runtime has.

    A mean over the whole map has one flaw: when the map holds two peaks (two
    hands, two cars), the mean of their votes is a box between them, on
    neither object, and the class reads both objects' features at once. With
    `around_peak`, inference (not training) weighs the votes by a window around
    the strongest peak (`peak_window`): the box a sharpened soft arg-max reads,
    widened by a cell on each side. For one object this changes next to
    nothing (the far cells' weights are tiny); for two it reads the stronger
    one. The window follows the peak's own box rather than a fixed number of
    cells, so it keeps every cell of a large object (a fixed 3 x 3 or 5 x 5 cut
    Caltech's boxes), and it is smooth in the logits: a hard window on the one
    strongest cell jumps between two far-apart, nearly equal cells when float16
    or int8 rounding swaps them (docs/real_photos.md, eighth and ninth
    sessions). Training keeps the mean over the whole map: inside a window the
    cells outside it get next to no gradient, so a wrong peak would hardly be
    pushed down.

    Args:
        around_peak: bool. Read the box and class around the strongest peak at
            inference. False in models saved before it existed (their config has
            no such field), so they answer exactly as they did.

    Inputs: `[logits (B, H, W, 1), offsets (B, H, W, 2) in (0, 1) as (x, y),
    sizes (B, H, W, 2) in (0, 1) as (h, w), features (B, H, W, C)]`.
    Outputs: `[box (B, 4) as [b_x, b_y, b_h, b_w], pooled features (B, C)]`.
    """

    def __init__(self, around_peak=False, **kwargs):
        super().__init__(**kwargs)
        self.around_peak = bool(around_peak)

    def call(self, inputs, training=None):
        logits, offsets, sizes, features = inputs
        height, width, channels = logits.shape[1], logits.shape[2], features.shape[-1]
        cells = height * width
        votes = box_lib.map_votes(offsets, sizes)  # (B, H, W, 4): b_x, b_y, b_h, b_w
        weights = ops.softmax(ops.reshape(logits, (-1, 1, cells)), axis=-1)  # (B, 1, H*W)
        windowed = self.around_peak and not training
        if windowed:
            weights = weights * ops.reshape(peak_window(logits, votes), (-1, 1, cells))
        # The weighted sums as matrix products, not multiply-then-sum: in a
        # full-integer TFLite model a matmul adds the H*W products in int32 and
        # rounds once, where an element-wise product rounds each tiny weight x
        # vote to int8 first (most round to 0) and shrinks the box.
        # A fifth vote of 1 sums the weights themselves; dividing by it is a
        # no-op in float over the whole map (a softmax sums to 1), renormalises
        # the window's weights, and in int8 undoes the mass lost when small
        # weights round to 0.
        votes = ops.concatenate([votes, ops.ones_like(votes[..., :1])], axis=-1)
        sums = ops.reshape(ops.matmul(weights, ops.reshape(votes, (-1, cells, 5))), (-1, 5))
        box = sums[:, :4] / sums[:, 4:5]
        pooled = ops.reshape(ops.matmul(weights, ops.reshape(features, (-1, cells, channels))), (-1, channels))
        if windowed:
            # The window's weights sum to less than 1. Only here: over the whole map the
            # arithmetic stays what it was before the window existed, so training, and a
            # seed's run, are the same to the bit.
            pooled = pooled / sums[:, 4:5]
        return [box, pooled]

    def compute_output_shape(self, input_shapes):
        batch = input_shapes[0][0]
        return [(batch, 4), (batch, input_shapes[3][-1])]

    def get_config(self):
        config = super().get_config()
        config.update(around_peak=self.around_peak)
        return config


# How much sharper than the box's own softmax the window's centre is read
# (the logits times this), and how steep its edge is (the sigmoid's slope, per
# cell). Sharper and steeper windows read the same photos right on hands363,
# but an unsure model's box then follows small input differences (the video
# test's fast and exact resizes disagreed); docs/real_photos.md, ninth session.
PEAK_SHARPNESS = 2.0
EDGE_STEEPNESS = 1.0


def peak_window(logits, votes, sharpness=PEAK_SHARPNESS, steepness=EDGE_STEEPNESS):
    """How much each cell votes with the strongest peak: `(B, H, W)` in (0, 1).

    The window is the box a sharpened soft arg-max reads (`softmax(sharpness *
    logits)` weighing the votes: next to the strongest cell's own box when one
    peak leads, and moving smoothly from one to the other as two peaks swap),
    widened by one cell on each side so it is at least the peak's 3 x 3
    neighbourhood. Its edge is a gentle sigmoid, not a step: along each axis a
    cell half a cell inside the edge weighs 0.62, half a cell outside 0.38,
    three cells outside 0.05. Both keep the box continuous in the logits, and
    gentle enough that the small differences between a float16, int8 or
    fast-resized input and Keras's move it by a little, where a window on the
    one strongest cell jumped from one object to the other.
    Every op has an int8 TFLite kernel.

    Args:
        logits: `(B, H, W, 1)` the map's logits.
        votes: `(B, H, W, 4)` every cell's box (`boxes.map_votes`).
        sharpness: float, the factor on the logits for the window's centre.
        steepness: float, the slope of the window's edge per cell.
    """
    height, width = logits.shape[1], logits.shape[2]
    cells = height * width
    sharp = ops.softmax(ops.reshape(logits, (-1, 1, cells)) * sharpness, axis=-1)  # (B, 1, H*W)
    peak_box = ops.reshape(ops.matmul(sharp, ops.reshape(votes, (-1, cells, 4))), (-1, 4))  # b_x, b_y, b_h, b_w
    cols = (ops.arange(width, dtype="float32") + 0.5) / width  # cell centres
    rows = (ops.arange(height, dtype="float32") + 0.5) / height
    # Distance inside the window's edge, in cells: positive inside, negative outside.
    in_x = (peak_box[:, 3:4] / 2 + 1.0 / width - ops.abs(cols[None, :] - peak_box[:, 0:1])) * width  # (B, W)
    in_y = (peak_box[:, 2:3] / 2 + 1.0 / height - ops.abs(rows[None, :] - peak_box[:, 1:2])) * height  # (B, H)
    return ops.sigmoid(steepness * in_y)[:, :, None] * ops.sigmoid(steepness * in_x)[:, None, :]
