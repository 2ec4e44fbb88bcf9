"""The source readers, one format each, and what they share (`entries`, `classes`, `files`).

`read_csv`, `read_voc`, `read_coco` and `read_yolo` need no TensorFlow; `tfds_examples` imports
TensorFlow and TFDS, so it loads on first use. `locnet_tf.data.sources.load_source` picks the
reader from a SPEC string.
"""

from locnet_tf.data.readers.coco import read_coco
from locnet_tf.data.readers.csv_source import read_csv
from locnet_tf.data.readers.voc import read_voc
from locnet_tf.data.readers.yolo import read_yolo

__all__ = ["read_coco", "read_csv", "read_voc", "read_yolo", "tfds_examples"]


def __getattr__(name):
    # PEP 562: the TFDS reader imports TensorFlow; load it only when asked for.
    if name == "tfds_examples":
        from locnet_tf.data.readers.tfds_source import tfds_examples

        return tfds_examples
    raise AttributeError(f"module 'locnet_tf.data.readers' has no attribute {name!r}")
