"""Data: sources (csv, voc, coco, yolo, tfds), the synthetic TFDS builder, the tf.data pipeline."""

from locnet_tf.data.records import DataError, Record, SourceData  # noqa: F401
from locnet_tf.data.sources import load_source  # noqa: F401
