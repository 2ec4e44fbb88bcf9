"""Imported first by the commands that need TensorFlow: one error line on the base install.

`python -m locnet_tf.train` (or evaluate, export, data, demo) where only the
base install is (numpy, Pillow, LiteRT: the device runtime) would end in a
ModuleNotFoundError traceback at `import keras`. Those modules import this
one before anything else: when one of them is the program being run, and
TensorFlow or Keras cannot be imported, it prints what to install
(`cli.require_train_extra`) and exits with status 1. Imported any other way
(a notebook's `import locnet_tf.train`), it does nothing, and the import
fails as imports do.
"""

import sys

from locnet_tf.core import cli

# `python -m` names -> the command as the user typed it.
COMMANDS = {
    "locnet_tf.train.__main__": "locnet_tf.train",
    "locnet_tf.evaluate.__main__": "locnet_tf.evaluate",
    "locnet_tf.export.__main__": "locnet_tf.export",
    "locnet_tf.demo": "locnet_tf.demo",
    "locnet_tf.data.__main__": "locnet_tf.data",
    "locnet_tf.data.check": "locnet_tf.data.check",
}

_running = getattr(getattr(sys.modules.get("__main__"), "__spec__", None), "name", None)
if _running in COMMANDS:
    cli.require_train_extra(COMMANDS[_running])
