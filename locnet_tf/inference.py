"""Moved: `locnet_tf.inference` is now `locnet_tf.evaluate.predictor` (its `vector_to_outputs` and
`outputs_to_vector`: `locnet_tf.model.target`); this old name warns and goes in 0.4.0.
"""

import warnings


def __getattr__(name):
    # PEP 562: every name asked of the old module warns and comes from the module that has it now
    # (imported here, on first use, so that importing the shim costs nothing).
    from locnet_tf.evaluate import predictor as _0

    modules = [_0]
    if name in ("vector_to_outputs", "outputs_to_vector"):  # the named outputs, on to the target's module
        from locnet_tf.model import target as _1

        modules = [_1]
    for module in modules:
        if hasattr(module, name):
            message = f"locnet_tf.inference moved to {module.__name__}; the old name goes in 0.4.0"
            warnings.warn(message, DeprecationWarning, stacklevel=2)
            return getattr(module, name)
    raise AttributeError(f"module 'locnet_tf.inference' has no attribute {name!r}")
