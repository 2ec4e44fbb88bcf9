"""locnet_tf: single-object classification with localization in Keras 3.

One CNN answers: is there an object (`p_c`), which class (`c_1..c_K`), and where
(`b_x, b_y, b_h, b_w`, relative to the image). See `locnet_tf.target` for the
vector and `locnet_tf.model.build_model` for the network.

`import locnet_tf` imports neither TensorFlow nor Keras nor TFDS: a device that
has only numpy, Pillow and LiteRT runs `.tflite` models through
`locnet_tf.runtime` / `python -m locnet_tf.predict` (DESIGN.md section 5).
Submodules load on first use (`locnet_tf.boxes`, `locnet_tf.TargetLayout`, ...).

What `import locnet_tf` used to do eagerly still happens, the moment the
library it is for is imported: when `tensorflow_datasets` is imported, the
`synthetic_road` and `procedural_objects` builders are registered (so
`tfds.load("synthetic_road")` works), and when `keras` is imported, the
model's layers are registered (so `keras.models.load_model("model.keras")`
works with no `custom_objects`), in either import order. `register()` does both
at once, explicitly.
"""

import importlib
import sys

__version__ = "0.2.0"  # the single source (setup.cfg reads it); CHANGELOG.md says what changed

# Lazily loaded attributes: name -> (module, attribute or None for the module).
_LAZY = {
    "boxes": ("locnet_tf.boxes", None),
    "target": ("locnet_tf.target", None),
    "DEFAULT_CLASSES": ("locnet_tf.target", "DEFAULT_CLASSES"),
    "TargetLayout": ("locnet_tf.target", "TargetLayout"),
}


def __getattr__(name):
    # PEP 562: `locnet_tf.boxes` etc. import their module (and so Keras) only when used.
    if name in _LAZY:
        module, attribute = _LAZY[name]
        value = importlib.import_module(module)
        return value if attribute is None else getattr(value, attribute)
    raise AttributeError(f"module 'locnet_tf' has no attribute {name!r}")


def _register_builders(_tfds=None):
    # The builders register themselves with TFDS when their modules are imported.
    importlib.import_module("locnet_tf.data.synthetic")
    importlib.import_module("locnet_tf.data.procedural")


# The modules locnet_tf.model imports that import Keras themselves.
_MODEL_DEPENDENCIES = ("locnet_tf.boxes", "locnet_tf.target", "locnet_tf.losses", "locnet_tf.metrics")


def _initializing(name):
    module = sys.modules.get(name)
    return module is not None and getattr(getattr(module, "__spec__", None), "_initializing", False)


def _register_layers(finished=None):
    # `@keras.saving.register_keras_serializable` runs when locnet_tf.model is
    # imported. When Keras is first imported by one of the model's own
    # dependencies (say `import locnet_tf.evaluate` -> target -> keras), that
    # module is still half-initialised and importing the model now would fail
    # on it: wait for the hook that fires when it has finished.
    if "keras" not in sys.modules or "locnet_tf.model" in sys.modules:
        return
    name = getattr(finished, "__name__", None)
    if any(_initializing(m) for m in _MODEL_DEPENDENCIES if m != name):
        return
    importlib.import_module("locnet_tf.model")


def register():
    """Registers the TFDS builders and the Keras layers now (imports TensorFlow)."""
    _register_builders()
    importlib.import_module("locnet_tf.model")


def _install_import_hooks():
    # wrapt's post-import hooks (wrapt comes with TensorFlow): each callback runs
    # once its module has finished importing, or at once if it already has.
    # Without wrapt there is no TensorFlow either, so nothing to register for.
    try:
        import wrapt
    except ImportError:
        return
    wrapt.register_post_import_hook(_register_builders, "tensorflow_datasets")
    for name in ("keras",) + _MODEL_DEPENDENCIES:
        wrapt.register_post_import_hook(_register_layers, name)


_install_import_hooks()
