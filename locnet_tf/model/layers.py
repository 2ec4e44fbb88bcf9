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

    Inputs: `[logits (B, H, W, 1), offsets (B, H, W, 2) in (0, 1) as (x, y),
    sizes (B, H, W, 2) in (0, 1) as (h, w), features (B, H, W, C)]`.
    Outputs: `[box (B, 4) as [b_x, b_y, b_h, b_w], pooled features (B, C)]`.
    """

    def call(self, inputs):
        logits, offsets, sizes, features = inputs
        height, width, channels = logits.shape[1], logits.shape[2], features.shape[-1]
        cells = height * width
        weights = ops.softmax(ops.reshape(logits, (-1, 1, cells)), axis=-1)  # (B, 1, H*W)
        votes = box_lib.map_votes(offsets, sizes)  # (B, H, W, 4): b_x, b_y, b_h, b_w
        # The weighted sums as matrix products, not multiply-then-sum: in a
        # full-integer TFLite model a matmul adds the H*W products in int32 and
        # rounds once, where an element-wise product rounds each tiny weight x
        # vote to int8 first (most round to 0) and shrinks the box.
        # A fifth vote of 1 sums the weights themselves; dividing by it is a
        # no-op in float (a softmax sums to 1) and, in int8, undoes the mass
        # lost when small weights round to 0.
        votes = ops.concatenate([votes, ops.ones_like(votes[..., :1])], axis=-1)
        sums = ops.reshape(ops.matmul(weights, ops.reshape(votes, (-1, cells, 5))), (-1, 5))
        box = sums[:, :4] / sums[:, 4:5]
        pooled = ops.matmul(weights, ops.reshape(features, (-1, cells, channels)))
        return [box, ops.reshape(pooled, (-1, channels))]

    def compute_output_shape(self, input_shapes):
        batch = input_shapes[0][0]
        return [(batch, 4), (batch, input_shapes[3][-1])]
