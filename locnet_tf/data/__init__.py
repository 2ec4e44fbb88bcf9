"""Data: sources (csv, voc, coco, yolo, tfds), the synthetic TFDS builder, the tf.data pipeline.

`DataError`, `Record` and `SourceData` (numpy only) import at once; `load_source`
loads the readers (and Keras, for box validation) on first use, so that
`locnet_tf.core.records` stays importable where TensorFlow is not installed.
`register()` registers the package's TFDS builders and Keras layers.
"""

from locnet_tf.core.errors import DataError
from locnet_tf.core.records import Record, SourceData

__all__ = ["DataError", "Record", "SourceData", "load_source", "register"]


def register():
    """Registers the package's TFDS builders (`synthetic_road`, `procedural_objects`) and Keras layers now.

    Both also register on their own when their modules are imported (`locnet_tf.data.pipeline`,
    `locnet_tf.model`); this is for code that uses `tfds.load` or `keras.models.load_model`
    directly and imports neither. Imports TensorFlow.
    """
    from locnet_tf.model import network as model  # noqa: F401  (its layers register when it is imported)
    from locnet_tf.data.builtin import procedural, synthetic  # noqa: F401  (their builders register when imported)


def __getattr__(name):
    # PEP 562: the readers import Keras; only load them when asked for.
    if name == "load_source":
        from locnet_tf.data.sources import load_source

        return load_source
    raise AttributeError(f"module 'locnet_tf.data' has no attribute {name!r}")
