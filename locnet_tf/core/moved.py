"""Old names of things that moved out of a module that stayed: they warn, then give the object.

    __getattr__ = moved.names_getattr(__name__, {"OldName": "locnet_tf.new.module"})

One minor version of grace for user code that imported a name from its old place
(docs/architecture.md, "Shims for moved public names"): the old name warns
`DeprecationWarning: OLD.NAME moved to NEW.NAME; the old name goes in 0.4.0`, pointing at the
caller's line, and returns the object at its new place, imported on first use. Modules that
moved whole are shim modules of their own (`locnet_tf/images.py`, ...).
"""

import importlib
import warnings

REMOVED_IN = "0.4.0"


def names_getattr(module, moved):
    """A PEP 562 module `__getattr__` for `module` (its `__name__`); `moved`: name -> new module's name."""

    def __getattr__(name):
        # Asked only for names the module does not define.
        if name in moved:
            message = f"{module}.{name} moved to {moved[name]}.{name}; the old name goes in {REMOVED_IN}"
            warnings.warn(message, DeprecationWarning, stacklevel=2)
            return getattr(importlib.import_module(moved[name]), name)
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__
