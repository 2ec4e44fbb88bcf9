"""locnet_tf: single-object classification with localization in Keras 3.

One CNN answers: is there an object (`p_c`), which class (`c_1..c_K`), and where
(`b_x, b_y, b_h, b_w`, relative to the image). See `locnet_tf.target` for the
vector and `locnet_tf.model.build_model` for the network.
"""

__version__ = "0.1.0"

from locnet_tf import boxes  # noqa: F401
from locnet_tf import target  # noqa: F401
from locnet_tf.target import DEFAULT_CLASSES, TargetLayout  # noqa: F401
from locnet_tf.data import synthetic as _synthetic  # noqa: F401,E402  registers the "synthetic_road" TFDS builder
from locnet_tf.data import procedural as _procedural  # noqa: F401,E402  registers "procedural_objects" (pretraining)
from locnet_tf import model as _model  # noqa: F401,E402  registers the model's layers, so any load_model after `import locnet_tf` works
