"""`python -m locnet_tf.data SPEC ...`: the check command (see `locnet_tf.data.check`)."""

from locnet_tf.core import tf_required as _tf_required  # noqa: F401  (first: `python -m` without TensorFlow says what to install)
import sys

from locnet_tf.data.check import main

if __name__ == "__main__":
    sys.exit(main())
