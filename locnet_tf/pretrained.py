"""Moved: `locnet_tf.pretrained` is now `locnet_tf.train.pretrained`; this old name warns and goes in
0.4.0.
"""

import warnings


def __getattr__(name):
    # PEP 562: every name asked of the old module warns and comes from the module that has it now
    # (imported here, on first use, so that importing the shim costs nothing).
    from locnet_tf.train import pretrained as _0

    for module in (_0,):
        if hasattr(module, name):
            message = f"locnet_tf.pretrained moved to {module.__name__}; the old name goes in 0.4.0"
            warnings.warn(message, DeprecationWarning, stacklevel=2)
            return getattr(module, name)
    raise AttributeError(f"module 'locnet_tf.pretrained' has no attribute {name!r}")


if __name__ == "__main__":
    # `python -m locnet_tf.pretrained` (0.2.0's command) runs the new one, `python -m locnet_tf.train.pretrained`.
    import sys

    from locnet_tf.core import cli
    from locnet_tf.train import pretrained as _new

    message = "locnet_tf.pretrained moved to locnet_tf.train.pretrained; the old name goes in 0.4.0"
    warnings.warn(message, DeprecationWarning, stacklevel=1)
    sys.exit(cli.run(_new.main))
