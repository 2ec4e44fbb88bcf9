"""The localization network: image in (0..255), target vector out.

    image (H, W, 3), float 0..255
      -> pixel scaling (inside the model, so exports need no outside normalisation)
      -> backbone: a small conv/pool CNN ("simple", default) or a keras.applications
         network ("mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0")
      -> 1x1 conv, flatten (keeps *where* things are), dense
      -> p_c (sigmoid, 1) | box (sigmoid, 4: b_x, b_y, b_h, b_w) | classes (softmax, K)
      -> TargetVector: concatenates them into [p_c, b_x, b_y, b_h, b_w, c_1..c_K]
         and carries the class names and the presence threshold in its config.
"""

import keras
from keras import layers

from locnet_tf import losses as losses_lib
from locnet_tf import metrics as metrics_lib
from locnet_tf import target as target_lib

BACKBONES = ("simple", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0")


@keras.saving.register_keras_serializable(package="locnet_tf")
class TargetVector(layers.Layer):
    """Joins the three heads into the target vector and records what it means.

    The class names and the calibrated presence threshold live in this layer's
    config, so a saved `.keras` file (and every export made from it) knows them.

    Args:
        class_names: list of str. Class names in target order.
        presence_threshold: float. `p_c` at or above which an object is reported.
    """

    def __init__(self, class_names=target_lib.DEFAULT_CLASSES, presence_threshold=0.5, **kwargs):
        super().__init__(**kwargs)
        self.class_names = [str(n) for n in class_names]
        self.presence_threshold = float(presence_threshold)

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
        config.update(class_names=list(self.class_names), presence_threshold=self.presence_threshold)
        return config


def _simple_backbone(x, filters, name="simple"):
    """Conv-BN-ReLU stages, each halving the resolution: small and fast on a CPU."""
    x = layers.Conv2D(filters[0], 3, strides=2, padding="same", use_bias=False, name=f"{name}_stem_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_stem_bn")(x)
    x = layers.ReLU(name=f"{name}_stem_relu")(x)
    for i, f in enumerate(filters):
        for j in range(2):
            x = layers.Conv2D(f, 3, padding="same", use_bias=False, name=f"{name}_s{i}_conv{j}")(x)
            x = layers.BatchNormalization(name=f"{name}_s{i}_bn{j}")(x)
            x = layers.ReLU(name=f"{name}_s{i}_relu{j}")(x)
        x = layers.MaxPooling2D(2, name=f"{name}_s{i}_pool")(x)
    return x


def _applications_backbone(name, x, image_size, weights):
    """A keras.applications network (no top); scales pixels the way it expects."""
    shape = (image_size, image_size, 3)
    if name == "mobilenet_v2":
        # MobileNetV2 has no built-in preprocessing: it wants [-1, 1].
        x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="pixel_scaling")(x)
        net = keras.applications.MobileNetV2(input_shape=shape, include_top=False, weights=weights)
    elif name == "mobilenet_v3_small":
        # include_preprocessing=True: the network rescales 0..255 itself.
        net = keras.applications.MobileNetV3Small(
            input_shape=shape, include_top=False, weights=weights, include_preprocessing=True
        )
    elif name == "efficientnet_b0":
        # EfficientNet rescales and normalises 0..255 inputs itself.
        net = keras.applications.EfficientNetB0(input_shape=shape, include_top=False, weights=weights)
    else:
        raise ValueError(f"Unknown backbone {name!r}; choose one of {BACKBONES}.")
    return net(x)


def build_model(
    num_classes=None,
    class_names=None,
    image_size=128,
    backbone="simple",
    weights=None,
    filters=(32, 64, 128, 256),
    head_channels=64,
    head_units=256,
    dropout=0.2,
    presence_threshold=0.5,
    name="locnet",
):
    """Builds the functional localization model.

    Args:
        num_classes: int. Number of classes K (output length 5 + K). Defaults to
            `len(class_names)`, or 3 when neither is given.
        class_names: list of str. Class names; defaults to pedestrian, car,
            motorcycle for K = 3 and `class_0..` otherwise.
        image_size: int. Square input size in pixels.
        backbone: str. One of `"simple"`, `"mobilenet_v2"`, `"mobilenet_v3_small"`,
            `"efficientnet_b0"`.
        weights: None, `"imagenet"` (needs the internet) or the path of a local
            weights file for a keras.applications backbone.
        filters: tuple of int. Channels of the simple backbone's stages.
        head_channels: int. Channels of the 1x1 conv before flattening.
        head_units: int. Width of the dense layer before the heads.
        dropout: float. Dropout rate in the head.
        presence_threshold: float. Stored in the model for decoding.
        name: str. Model name.

    Returns:
        A `keras.Model` taking float images `(B, S, S, 3)` in 0..255 and returning
        `(B, 5 + K)` vectors `[p_c, b_x, b_y, b_h, b_w, c_1..c_K]`.
    """
    if class_names is None:
        k = 3 if num_classes is None else int(num_classes)
        class_names = target_lib.DEFAULT_CLASSES if k == 3 else [f"class_{i}" for i in range(k)]
    class_names = list(class_names)
    if num_classes is not None and int(num_classes) != len(class_names):
        raise ValueError(f"num_classes={num_classes} but {len(class_names)} class names given.")
    if backbone not in BACKBONES:
        raise ValueError(f"Unknown backbone {backbone!r}; choose one of {BACKBONES}.")
    if backbone == "simple" and weights is not None:
        raise ValueError("The 'simple' backbone has no pretrained weights; use weights=None.")

    image = keras.Input((image_size, image_size, 3), name="image")
    if backbone == "simple":
        x = layers.Rescaling(1.0 / 255.0, name="pixel_scaling")(image)
        x = _simple_backbone(x, filters)
    else:
        x = _applications_backbone(backbone, image, image_size, weights)

    x = layers.Conv2D(head_channels, 1, use_bias=False, name="head_conv")(x)
    x = layers.BatchNormalization(name="head_bn")(x)
    x = layers.ReLU(name="head_relu")(x)
    x = layers.Flatten(name="head_flatten")(x)
    x = layers.Dropout(dropout, name="head_dropout")(x)
    x = layers.Dense(head_units, activation="relu", name="head_dense")(x)
    # Heads in float32 even under a mixed-precision policy: sigmoid/softmax
    # outputs and the loss stay exact.
    p_c = layers.Dense(1, activation="sigmoid", name="p_c", dtype="float32")(x)
    box = layers.Dense(4, activation="sigmoid", name="box", dtype="float32")(x)
    heads = [p_c, box]
    if len(class_names) > 1:
        heads.append(layers.Dense(len(class_names), activation="softmax", name="classes", dtype="float32")(x))
    y = TargetVector(class_names, presence_threshold, name="target", dtype="float32")(heads)
    return keras.Model(image, y, name=name)


def compile_model(model, loss=None, optimizer=None, learning_rate=1e-3, jit_compile="auto"):
    """Compiles with `LocalizationLoss`, its per-term metrics and the report metrics.

    Args:
        model: the model from `build_model`.
        loss: a `LocalizationLoss`; defaults to the default mode with Huber boxes.
        optimizer: a Keras optimizer; defaults to Adam(`learning_rate`).
        learning_rate: float or schedule, used when `optimizer` is None.
        jit_compile: passed to `Model.compile`.
    """
    loss = loss or losses_lib.LocalizationLoss()
    optimizer = optimizer or keras.optimizers.Adam(learning_rate)
    threshold = presence_threshold(model)
    model.compile(
        optimizer=optimizer,
        loss=loss,
        metrics=losses_lib.loss_component_metrics(loss) + metrics_lib.localization_metrics(threshold),
        jit_compile=jit_compile,
    )
    # Build the optimizer's slots now, so that saving a compiled model before any
    # training stores them and reloading does not warn about a variable mismatch.
    model.optimizer.build(model.trainable_variables)
    return model


def target_layer(model):
    """The model's `TargetVector` layer (where class names and threshold live)."""
    for layer in model.layers:
        if isinstance(layer, TargetVector):
            return layer
    raise ValueError(f"Model {model.name!r} has no TargetVector layer: not a locnet_tf model.")


def class_names(model):
    """The class names stored in a locnet_tf model."""
    return list(target_layer(model).class_names)


def presence_threshold(model):
    """The presence threshold stored in a locnet_tf model."""
    return target_layer(model).presence_threshold


def layout(model):
    """The model's `TargetLayout`."""
    return target_lib.TargetLayout(class_names(model))
