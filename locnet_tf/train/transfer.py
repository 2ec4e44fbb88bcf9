"""Start training from another locnet_tf model (`train --init PATH.keras`).

Transfer learning is how people train on a few hundred photos of their own:
start from a model that already knows how to see, replace what is specific to
the old task, fine-tune. Here the old model may have other classes and another
input size:

- `architecture(model)` reads the build options (backbone, filters, depths,
  head, widths) that the model records about itself (`model.build_arguments`),
  so the new model is built with the same ones and every layer has a
  counterpart (a run folder's config.json is not needed, and may be absent).
  A model saved by locnet_tf 0.2.0 or earlier records none: for those they are
  read off its layers' names and shapes.
- `init_weights(model, source)` copies every layer's weights from the layer of
  the same name in `source`: the backbone, the box head and the presence head
  (whose shapes do not depend on the input size or the classes). The class
  layer carries over only when the class names are the same, in the same
  order; otherwise it is new (freshly initialised) for the new classes.

Keras's own `load_weights(..., skip_mismatch=True)` matches by position
within the file and cannot tell a class layer of the same shape but other
meaning (three other classes) from the right one, hence the by-name copy.
"""

import keras

from locnet_tf.core import config as config_lib
from locnet_tf.model import network as model_lib

# Layers that only make sense for the classes they were trained on.
CLASS_LAYERS = ("classes",)
# `Config` fields that describe the network (what `architecture` returns).
ARCHITECTURE_FIELDS = config_lib.ARCHITECTURE_FIELDS
# keras.applications models appear as one nested layer; its name says which.
_APPLICATIONS = {
    "mobilenetv2": "mobilenet_v2",
    "mobilenetv3small": "mobilenet_v3_small",
    "efficientnetb0": "efficientnet_b0",
}


def model_path(path):
    """The `.keras` file that `path` names: the file itself, `model.keras` in a run
    folder, or for `"pretrained"` the weights that ship with the package."""
    path = config_lib.init_path(path)
    if path.is_dir():
        path = path / "model.keras"
    if not path.is_file():
        raise FileNotFoundError(f"--init {path}: no such model file (give a .keras file or a run folder).")
    if path.suffix != ".keras":
        raise ValueError(f"--init {path}: expected a .keras model (a training run's model.keras).")
    return path


def load(path):
    """Loads the locnet_tf model that `path` names (see `model_path`)."""
    path = model_path(path)
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as error:  # a damaged or foreign file: say which one
        raise ValueError(f"--init {path}: cannot be loaded as a Keras model ({error}).") from error
    model_lib.target_layer(model)  # raises for a Keras model that is not a locnet_tf one
    return model


def architecture(model):
    """The `build_model` options of a locnet_tf model: those it records, else read off its layers.

    Returns:
        dict with the `ARCHITECTURE_FIELDS` and `image_size`, such that
        `build_model(**architecture(m))` has the same layers and weight shapes
        as `m` (`filters` and `depths` are None for a backbone other than "simple").
    """
    recorded = model_lib.build_arguments(model)
    if recorded is not None:
        return {key: recorded[key] for key in ("image_size", *ARCHITECTURE_FIELDS)}
    return architecture_from_layers(model)


def architecture_from_layers(model):
    """`architecture` for a model that does not record it (saved by 0.2.0 or earlier): guessed from its layers."""
    names = {layer.name for layer in model.layers}
    if "simple_stem_conv" in names:
        backbone = "simple"
        filters = tuple(model.get_layer(f"simple_{part}_conv").filters for part in ("stem", "s1a", "s2a", "s3a"))
        depths = tuple(
            sum(
                1 for n in names if n == f"simple_s{i}b_conv" or (n.startswith(f"simple_s{i}b") and n.endswith("_conv"))
            )
            for i in (1, 2, 3)
        )
    elif "lite0_stem_conv" in names:
        backbone = "efficientnet_lite0"
        filters = depths = None  # the simple backbone's options: they mean nothing here
    else:
        backbone = next(
            (value for key, value in _APPLICATIONS.items() for n in names if n.lower().startswith(key)), None
        )
        if backbone is None:
            raise ValueError(f"Model {model.name!r}: cannot tell its backbone from its layers.")
        filters = depths = None  # the simple backbone's options: they mean nothing here
    head = "spatial" if "where_logits" in names else "dense"
    return {
        "image_size": int(model.input_shape[1]),
        "backbone": backbone,
        "filters": filters,
        "depths": depths,
        "head": head,
        "head_channels": int(model.get_layer("head_conv").filters),
        "head_units": int(model.get_layer("head_dense").units),
        "dropout": float(model.get_layer("head_dropout").rate),
        "class_context": "class_context" in names,
    }


def plan(model, source):
    """Which of `model`'s layers take `source`'s weights (see `init_weights`); copies nothing.

    Returns:
        dict: `carried` and `new` (names of `model`'s layers with weights),
        and `new_classes` (bool: the class layer starts afresh).
    """
    same_classes = model_lib.class_names(model) == model_lib.class_names(source)
    source_layers = {layer.name: layer for layer in source.layers}
    carried, new = [], []
    for layer in model.layers:
        if not layer.weights:
            continue
        other = source_layers.get(layer.name)
        shapes = [tuple(w.shape) for w in layer.weights]
        fits = other is not None and [tuple(w.shape) for w in other.weights] == shapes
        if fits and (same_classes or layer.name not in CLASS_LAYERS):
            carried.append(layer.name)
        else:
            new.append(layer.name)
    return {"carried": carried, "new": new, "new_classes": not same_classes}


def init_weights(model, source):
    """Copies `source`'s weights into `model`, layer by layer by name.

    A layer is copied when `source` has a layer of that name whose weights
    have the same shapes; the class layer only when both models have the same
    class names in the same order.

    Returns:
        The `plan(model, source)` it followed.

    Raises:
        ValueError: when the backbone does not carry over (another architecture).
    """
    summary = plan(model, source)
    backbone = [n for n in summary["new"] if not n.startswith(("head", "where", "p_c", "class", "box"))]
    if backbone:
        raise ValueError(
            f"The --init model's backbone does not fit this one (layers {backbone[:3]} differ): "
            "build with its architecture (train takes it from the --init model unless flags say otherwise)."
        )
    for name in summary["carried"]:
        model.get_layer(name).set_weights(source.get_layer(name).get_weights())
    return summary


def describe(summary, source_path, source_classes, class_names):
    """One line saying what `init_weights` carried over."""
    head = (
        f"a new class head for {len(class_names)} classes (it had {len(source_classes)}: "
        f"{', '.join(source_classes[:4])}{', ...' if len(source_classes) > 4 else ''})"
        if summary["new_classes"]
        else "its class head too (same classes)"
    )
    others = [n for n in summary["new"] if n not in CLASS_LAYERS]
    extra = f"; new: {', '.join(others)}" if others else ""
    return f"Initialised from {source_path}: {len(summary['carried'])} layers carried over, {head}{extra}."
