"""The localization network: image in (0..255), target vector out.

    image (S, S, 3), float 0..255             S = 128 by default
      -> pixel scaling (inside the model, so exports need no outside normalisation)
      -> backbone: "simple" (default): a small all-3x3 CNN of strided convolutions,
         stride-8 features with stride-16 context; "efficientnet_lite0": EfficientNet-
         Lite0 with the ImageNet weights that ship with the package
         (`locnet_tf.model.efficientnet_lite`), its stride-16 features with its stride-32
         ones upsampled onto them; or a keras.applications network
         ("mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0")
      -> head "spatial" (default): a 3x3 conv, then per cell a "where" logit, a
         centre offset and a box size; the box is their soft arg-max (SoftArgmaxBox;
         at inference weighted by a soft window around the strongest peak, so two
         objects do not give a box between them), p_c reads the whole image's pooled features,
         the class the features where the object is. Head "dense": the lecture's
         flatten + dense layers.
      -> p_c (sigmoid, 1) | box (sigmoid, 4: b_x, b_y, b_h, b_w) | classes (softmax, K)
      -> TargetVector: concatenates them into [p_c, b_x, b_y, b_h, b_w, c_1..c_K]
         and carries the model's description in its config: class names, presence
         threshold, resize, build arguments (`build_arguments`, `preprocessing`).

`build_model()` with no arguments builds the model the default training command
trains (the `Config` defaults); `build_model(config)` builds a config's model.
"""

import keras
from keras import layers

from locnet_tf.core import config as config_lib
from locnet_tf.model import efficientnet_lite as lite_lib
from locnet_tf.model import finetune  # noqa: F401  (registers FineTuneAdamW: a checkpoint of a fine-tuning names it)
from locnet_tf.model import losses as losses_lib
from locnet_tf.model import metrics as metrics_lib
from locnet_tf.model import target as target_lib
from locnet_tf.core.config import BACKBONES
from locnet_tf.model.layers import SoftArgmaxBox, TargetVector

# Channels the Lite0 backbone's stride-32 features are reduced to before they are upsampled onto its stride-16 ones.
LITE_FUSE_CHANNELS = 96


def _conv_bn_relu(x, filters, kernel, name, strides=1):
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False, name=f"{name}_conv")(x)
    # momentum 0.9: an epoch of the default data is ~125 steps, and with Keras's
    # 0.99 the moving statistics lag so far behind that validation is noise
    # for the first epochs.
    x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _simple_backbone(x, filters, depths=(1, 1, 1), name="simple"):
    """Small all-3x3 CNN: fast on a CPU, output at stride 8 with stride-16 context.

    stem (3x3, stride 2) -> stage 1 (strided conv + convs; stride 4)
    -> stage 2 (strided conv + convs; stride 8) -> stage 3 (strided conv +
    convs; stride 16), upsampled and concatenated back onto stage 2, then fused
    by a 1x1 conv. Each stage starts with a strided 3x3 conv rather than a conv
    at full resolution and a pooling: a quarter of the FLOPs for the same
    receptive field, and dense convolutions (no depthwise ones), which both
    TensorFlow's CPU kernels and XNNPACK run close to matmul speed.

    `depths[i]` is the number of 3x3 convs after stage i+1's strided conv; the
    second and later ones are residual (x + conv(x)), so a deeper stage starts
    out as the shallower one plus a correction. Depth is cheapest at the
    coarse stages: a conv at stride 16 costs a quarter of one at stride 8.
    """
    x = _conv_bn_relu(x, filters[0], 3, f"{name}_stem", strides=2)
    outputs = []
    for i in (1, 2, 3):
        x = _conv_bn_relu(x, filters[i], 3, f"{name}_s{i}a", strides=2)
        for j in range(depths[i - 1]):
            # The first conv after the strided one keeps its old name ("_s{i}b"), so
            # models saved before `depths` existed load unchanged.
            suffix = "b" if j == 0 else f"b{j + 1}"
            y = _conv_bn_relu(x, filters[i], 3, f"{name}_s{i}{suffix}")
            x = y if j == 0 else layers.Add(name=f"{name}_s{i}{suffix}_add")([x, y])
        outputs.append(x)
    fine, coarse = outputs[1], outputs[2]
    coarse = layers.UpSampling2D(2, name=f"{name}_s3_up")(coarse)
    x = layers.Concatenate(name=f"{name}_fuse_concat")([fine, coarse])
    return _conv_bn_relu(x, filters[3], 1, f"{name}_fuse")


def _lite0_backbone(image):
    """EfficientNet-Lite0 (ImageNet weights loaded by `build_model`): a stride-16 map and pooled features.

    Why stride 16 and not the network's own stride-32 output: at 128 px that
    is a 4x4 grid, and the soft arg-max box reads positions off the map it is
    given; at stride 16 it gets 8x8 (10x10 at 160 px), as fine as the simple
    backbone's 16x16 map relative to the objects' size once the features are
    good. So the head reads the last 112-channel block (end of stage 5, the
    finest map with the deep ImageNet features) concatenated with the stride-32
    head features (1280 channels reduced to `LITE_FUSE_CHANNELS` by a 1x1 conv,
    upsampled x2: the context of the whole object), a small FPN step. Presence
    (and, with `class_context`, the class) also read the stride-32 features
    pooled over the image: that is what ImageNet trained them for (a logistic regression on them alone names
    0.825 of a 5-vehicle set's classes at 224 px).

    Every BatchNorm of the backbone runs in inference mode with its ImageNet
    statistics (built frozen): batches of a few photos give noisy statistics
    that would overwrite them in a few hundred steps.

    Returns:
        (stride-16 fused map, pooled stride-32 features).
    """
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="pixel_scaling")(image)  # Lite0 was trained on [-1, 1]
    feats = lite_lib.features(x, bn_trainable=False)
    top = feats["top"]
    pooled = layers.GlobalAveragePooling2D(name="lite0_pool")(top)
    coarse = _conv_bn_relu(top, LITE_FUSE_CHANNELS, 1, "fuse_top")
    coarse = layers.UpSampling2D(2, name="fuse_top_up")(coarse)
    fused = layers.Concatenate(name="fuse_concat")([feats["stride16"], coarse])
    return fused, pooled


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
    config=None,
    *,
    num_classes=None,
    class_names=None,
    image_size=None,
    backbone=None,
    weights=None,
    filters=None,
    depths=None,
    head=None,
    head_channels=None,
    head_units=None,
    dropout=None,
    class_context=None,
    presence_threshold=0.5,
    resize=None,
    size_scale=1.0,
    name="locnet",
):
    """Builds the functional localization model.

    Every architecture argument left at None takes its value from `config`, and
    without one from `Config()`: the defaults live in one place (`locnet_tf.core.config`),
    and `build_model()` is the model `python -m locnet_tf.train` trains.

    Args:
        config: `Config` or None. The architecture (`Config.model_kwargs`) and,
            when it names them, the class names.
        num_classes: int. Number of classes K (output length 5 + K). Defaults to
            `len(class_names)`, or 3 when neither is given.
        class_names: list of str. Class names; defaults to pedestrian, car,
            motorcycle for K = 3 and `class_0..` otherwise.
        image_size: int. Square input size in pixels (default 128).
        backbone: str. One of `"simple"`, `"efficientnet_lite0"`, `"mobilenet_v2"`,
            `"mobilenet_v3_small"`, `"efficientnet_b0"`.
        weights: None (random), `"imagenet"` or the path of a local weights
            file. For `"efficientnet_lite0"`, `"imagenet"` is the file that
            ships with the package (offline); for a keras.applications backbone
            it downloads (online).
        filters: tuple of 4 int. Channels of the simple backbone's stem and
            stages 1-3 (default 16, 32, 64, 128).
        depths: tuple of 3 int. 3x3 convs after each strided conv of the simple
            backbone's stages 1-3, at least 1 each (default 1, 2, 3).
        head: str. `"spatial"` (default): the box is a soft arg-max over the
            feature map (`SoftArgmaxBox`), the class is read from the features
            where the object is. `"dense"`: the classic lecture head, dense
            layers on the flattened features regress all outputs.
        head_channels: int. Channels of the head's 3x3 (spatial) or 1x1 (dense) conv.
        head_units: int. Width of the dense layer before the presence/class outputs.
        dropout: float. Dropout rate in the head.
        class_context: bool. Spatial head: the class reads the whole image's
            pooled features (what the presence head reads) beside those where
            the object is. Real photos: the scene says much about the object.
        presence_threshold: float. Stored in the model for decoding.
        resize: str. How images of other shapes are brought to the input
            (`"stretch"` or `"letterbox"`; default: the config's). Not part of
            the network: stored in the model, so that whatever loads it
            resizes as training did.
        size_scale: float. Spatial head: multiplies the box-size map. Progressive
            training (`train`, `--progressive-size`) builds its low-resolution
            model with `final size / size`, so that a box `p` pixels tall gets
            the same sigmoid output (`p / final size`) at either input size and
            the weights carry over. 1 (every model that is saved) adds nothing.
        name: str. Model name.

    Returns:
        A `keras.Model` taking float images `(B, S, S, 3)` in 0..255 and returning
        `(B, 5 + K)` vectors `[p_c, b_x, b_y, b_h, b_w, c_1..c_K]`. It records
        its build arguments and preprocessing (`build_arguments`, `preprocessing`).
    """
    if config is not None and not isinstance(config, config_lib.Config):
        raise TypeError(f"build_model's first argument is a Config (or None), got {config!r}; use num_classes=.")
    config = config if config is not None else config_lib.Config()
    given = dict(
        image_size=image_size,
        backbone=backbone,
        weights=weights,
        filters=filters,
        depths=depths,
        head=head,
        head_channels=head_channels,
        head_units=head_units,
        dropout=dropout,
        class_context=class_context,
    )
    defaults = config.model_kwargs()
    options = {key: defaults[key] if value is None else value for key, value in given.items()}
    image_size, backbone, weights, filters, depths, head, head_channels, head_units, dropout, class_context = (
        options[key] for key in given
    )
    resize = config.resize if resize is None else resize
    if class_names is None and num_classes is None and config.class_names:
        class_names = config.class_names
    if class_names is None:
        k = 3 if num_classes is None else int(num_classes)
        class_names = target_lib.DEFAULT_CLASSES if k == 3 else [f"class_{i}" for i in range(k)]
    class_names = list(class_names)
    if num_classes is not None and int(num_classes) != len(class_names):
        raise ValueError(f"num_classes={num_classes} but {len(class_names)} class names given.")
    if backbone not in BACKBONES:
        raise ValueError(f"Unknown backbone {backbone!r}; choose one of {BACKBONES}.")
    if len(depths) != 3 or min(depths) < 1:
        raise ValueError(f"depths must be 3 integers >= 1 (convs per stage), got {tuple(depths)}.")
    if backbone == "simple" and weights is not None:
        raise ValueError("The 'simple' backbone has no pretrained weights; use weights=None.")

    image = keras.Input((image_size, image_size, 3), name="image")
    pooled = None  # features presence and class read, pooled over the image (Lite0: its stride-32 ones)
    if backbone == "simple":
        x = layers.Rescaling(1.0 / 255.0, name="pixel_scaling")(image)
        x = _simple_backbone(x, filters, depths)
    elif backbone == "efficientnet_lite0":
        x, pooled = _lite0_backbone(image)
    else:
        x = _applications_backbone(backbone, image, image_size, weights)

    # Heads in float32 even under a mixed-precision policy: sigmoid/softmax
    # outputs and the loss stay exact.
    if head == "spatial":
        x = _conv_bn_relu(x, head_channels, 3, "head")
        # No bias: a softmax over cells ignores a constant added to every logit.
        logits = layers.Conv2D(1, 1, use_bias=False, name="where_logits", dtype="float32")(x)
        offsets = layers.Conv2D(2, 1, activation="sigmoid", name="where_offsets", dtype="float32")(x)
        sizes = layers.Conv2D(2, 1, activation="sigmoid", name="where_sizes", dtype="float32")(x)
        if size_scale != 1.0:
            sizes = layers.Rescaling(float(size_scale), name="where_sizes_scale", dtype="float32")(sizes)
        box, at_object = SoftArgmaxBox(around_peak=True, name="box", dtype="float32")([logits, offsets, sizes, x])
        # Presence from the whole image (is anything there?), class from where it is.
        summary = [layers.GlobalMaxPooling2D(name="head_max")(x), layers.GlobalAveragePooling2D(name="head_mean")(x)]
        summary = layers.Concatenate(name="head_summary")(summary + ([pooled] if pooled is not None else []))
        summary = summary_features = layers.Dropout(dropout, name="head_dropout")(summary)
        summary = layers.Dense(head_units, activation="relu", name="head_dense")(summary)
        p_c = layers.Dense(1, activation="sigmoid", name="p_c", dtype="float32")(summary)
        class_input = at_object
        if class_context:
            class_input = layers.Concatenate(name="class_context")([at_object, summary_features])
        class_features = layers.Dense(head_units, activation="relu", name="class_dense")(class_input)
    elif head == "dense":
        x = _conv_bn_relu(x, head_channels, 1, "head")
        x = layers.Flatten(name="head_flatten")(x)
        x = layers.Dropout(dropout, name="head_dropout")(x)
        if pooled is not None:
            x = layers.Concatenate(name="head_summary")([x, pooled])
        x = layers.Dense(head_units, activation="relu", name="head_dense")(x)
        p_c = layers.Dense(1, activation="sigmoid", name="p_c", dtype="float32")(x)
        box = layers.Dense(4, activation="sigmoid", name="box", dtype="float32")(x)
        class_features = x
    else:
        raise ValueError(f"Unknown head {head!r}; choose 'spatial' or 'dense'.")
    heads = [p_c, box]
    if len(class_names) > 1:
        heads.append(
            layers.Dense(len(class_names), activation="softmax", name="classes", dtype="float32")(class_features)
        )
    simple = backbone == "simple"  # filters and depths mean nothing to the other backbones
    record = dict(
        image_size=int(image_size),
        backbone=backbone,
        weights=None if weights is None else str(weights),
        filters=[int(f) for f in filters] if simple else None,
        depths=[int(d) for d in depths] if simple else None,
        head=head,
        head_channels=int(head_channels),
        head_units=int(head_units),
        dropout=float(dropout),
        class_context=bool(class_context),
        size_scale=float(size_scale),
        name=name,
    )
    y = TargetVector(class_names, presence_threshold, resize, record, name="target", dtype="float32")(heads)
    model = keras.Model(image, y, name=name)
    if backbone == "efficientnet_lite0" and weights is not None:
        lite_lib.load_imagenet_weights(model, weights)
    return model


def compile_model(
    model, loss=None, optimizer=None, learning_rate=1e-3, jit_compile="auto", threshold=None, steps_per_execution=1
):
    """Compiles with `LocalizationLoss`, its per-term metrics and the report metrics.

    Args:
        model: the model from `build_model` (or a `losses.MapSupervision` of it).
        loss: a `LocalizationLoss`; defaults to the default mode with Huber boxes.
        optimizer: a Keras optimizer; defaults to Adam(`learning_rate`).
        learning_rate: float or schedule, used when `optimizer` is None.
        jit_compile: passed to `Model.compile`.
        steps_per_execution: passed to `Model.compile`: steps run per call
            into TensorFlow (fewer Python round trips; same maths).
        threshold: presence threshold of the metrics; default: the model's.
    """
    loss = loss or losses_lib.LocalizationLoss()
    optimizer = optimizer or keras.optimizers.Adam(learning_rate)
    if threshold is None:
        threshold = presence_threshold(model)
    model.compile(
        optimizer=optimizer,
        loss=loss,
        metrics=losses_lib.loss_component_metrics(loss) + metrics_lib.localization_metrics(threshold),
        jit_compile=jit_compile,
        steps_per_execution=steps_per_execution,
    )
    # Build the optimizer's slots now, so that saving a compiled model before any
    # training stores them and reloading does not warn about a variable mismatch.
    if not model.optimizer.built:
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


def resize_method(model):
    """The resize a locnet_tf model's inputs need, as stored in it; None for a model saved before it was."""
    return target_layer(model).resize


def build_arguments(model):
    """The arguments `build_model` built `model` with, as stored in it; None for a model saved before they were.

    `build_model(**build_arguments(m))` builds `m`'s network again (its
    weights start afresh): the architecture, `image_size`, `weights`,
    `size_scale`, `name`, and the class names, presence threshold and resize
    the model holds now (the threshold as calibrated). `filters` and
    `depths` are None for a backbone other than `"simple"`.
    """
    layer = target_layer(model)
    if layer.build_arguments is None:
        return None
    arguments = dict(layer.build_arguments)
    for key in ("filters", "depths"):  # tuples, as Config holds them (JSON made them lists)
        if arguments.get(key) is not None:
            arguments[key] = tuple(arguments[key])
    arguments.update(
        class_names=list(layer.class_names), presence_threshold=layer.presence_threshold, resize=layer.resize
    )
    return arguments


def preprocessing(model):
    """What a model's user needs to feed it, as stored in it.

    Returns:
        dict: `image_size` (int, the square input), `resize` (`"stretch"`,
        `"letterbox"`, or None when the model was saved before it recorded
        its resize), `class_names` (list of str), `presence_threshold` (float).
    """
    layer = target_layer(model)
    return {
        "image_size": int(model.input_shape[1]),
        "resize": layer.resize,
        "class_names": list(layer.class_names),
        "presence_threshold": layer.presence_threshold,
    }


def layout(model):
    """The model's `TargetLayout`."""
    return target_lib.TargetLayout(class_names(model))
