"""locnet_tf: single-object classification with localization in Keras 3.

One CNN answers: is there an object (`p_c`), which class (`c_1..c_K`), and where
(`b_x, b_y, b_h, b_w`, relative to the image). See `locnet_tf.model.target` for the
vector and `locnet_tf.model.build_model` for the network.

`import locnet_tf` imports neither TensorFlow nor Keras nor TFDS: a device that
has only numpy, Pillow and LiteRT runs `.tflite` models through
`locnet_tf.runtime` / `python -m locnet_tf.predict` (DESIGN.md section 5).
Names load on first use (`locnet_tf.TargetLayout`, `locnet_tf.DEFAULT_CLASSES`).

Registration happens where it is needed, by plain imports: the model's Keras
layers register when `locnet_tf.model` is imported (every loader of a `.keras`
file imports it first; `import locnet_tf.model` before
`keras.models.load_model("model.keras")` in your own code), and the
`synthetic_road` and `procedural_objects` TFDS builders when
`locnet_tf.data.pipeline` (or the builder's own module) is imported.
`locnet_tf.data.register()` does both at once.
"""

import importlib
import warnings

__version__ = "0.2.0"  # the single source (setup.cfg reads it); CHANGELOG.md says what changed

# Lazily loaded attributes: name -> (module, attribute or None for the module).
_LAZY = {
    # Modules that moved into `locnet_tf.model` (issue 28): their old names are shim modules that warn.
    "boxes": ("locnet_tf.boxes", None),
    "target": ("locnet_tf.target", None),
    "DEFAULT_CLASSES": ("locnet_tf.model.target", "DEFAULT_CLASSES"),
    "TargetLayout": ("locnet_tf.model.target", "TargetLayout"),
}
# Names that moved: name -> (module, attribute, the version that removes the old name). The old
# name warns (DeprecationWarning) and gives the object at its new place.
_MOVED = {
    "register": ("locnet_tf.data", "register", "0.4.0"),
}


def __getattr__(name):
    # PEP 562: `locnet_tf.TargetLayout` etc. import their module (and so Keras) only when used.
    if name in _LAZY:
        module, attribute = _LAZY[name]
        value = importlib.import_module(module)
        return value if attribute is None else getattr(value, attribute)
    if name in _MOVED:
        module, attribute, removed = _MOVED[name]
        new = module if attribute is None else f"{module}.{attribute}"
        warnings.warn(
            f"locnet_tf.{name} moved to {new}; the old name goes in {removed}",
            DeprecationWarning,
            stacklevel=2,
        )
        value = importlib.import_module(module)
        return value if attribute is None else getattr(value, attribute)
    raise AttributeError(f"module 'locnet_tf' has no attribute {name!r}")
