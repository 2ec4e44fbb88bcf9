"""Moved: `locnet_tf.smoothing` is now `locnet_tf.runtime.smoothing`; this old name warns and goes in
0.4.0.
"""

import warnings


def __getattr__(name):
    # PEP 562: every name asked of the old module warns and comes from the module that has it now
    # (imported here, on first use, so that importing the shim costs nothing).
    from locnet_tf.runtime import smoothing as _0

    for module in (_0,):
        if hasattr(module, name):
            message = f"locnet_tf.smoothing moved to {module.__name__}; the old name goes in 0.4.0"
            warnings.warn(message, DeprecationWarning, stacklevel=2)
            return getattr(module, name)
    raise AttributeError(f"module 'locnet_tf.smoothing' has no attribute {name!r}")
