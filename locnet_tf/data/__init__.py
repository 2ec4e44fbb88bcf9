"""Data: sources (csv, voc, coco, yolo, tfds), the synthetic TFDS builder, the tf.data pipeline.

`DataError`, `Record` and `SourceData` (numpy only) import at once; `load_source`
loads the readers (and Keras, for box validation) on first use, so that
`locnet_tf.data.records` stays importable where TensorFlow is not installed.
"""

from locnet_tf.data.records import DataError, Record, SourceData  # noqa: F401


def __getattr__(name):
    # PEP 562: the readers import Keras; only load them when asked for.
    if name == "load_source":
        from locnet_tf.data.sources import load_source

        return load_source
    raise AttributeError(f"module 'locnet_tf.data' has no attribute {name!r}")
