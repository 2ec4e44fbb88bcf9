"""Moved: `locnet_tf.images` is now `locnet_tf.core.image_files`, `locnet_tf.core.resize`,
`locnet_tf.core.geometry` (its `ImageError` and `DataError`: `locnet_tf.core.errors`); this old name warns
and goes in 0.4.0.
"""

import warnings


def __getattr__(name):
    # PEP 562: every name asked of the old module warns and comes from the module that has it now
    # (imported here, on first use, so that importing the shim costs nothing).
    from locnet_tf.core import errors as _e
    from locnet_tf.core import image_files as _0
    from locnet_tf.core import resize as _1
    from locnet_tf.core import geometry as _2

    # The errors first: image_files imports them too, but they live in core.errors.
    for module in (_e, _0, _1, _2):
        if hasattr(module, name):
            message = f"locnet_tf.images moved to {module.__name__}; the old name goes in 0.4.0"
            warnings.warn(message, DeprecationWarning, stacklevel=2)
            return getattr(module, name)
    raise AttributeError(f"module 'locnet_tf.images' has no attribute {name!r}")
