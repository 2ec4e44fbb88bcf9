"""`python -m locnet_tf.data SPEC ...`: the check command (see `locnet_tf.data.check`)."""

import sys

from locnet_tf.data.check import main

if __name__ == "__main__":
    sys.exit(main())
