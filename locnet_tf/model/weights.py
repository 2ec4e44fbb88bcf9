"""A `--weights` file checked against the backbone it is for, before training reads any data.

Keras would say "Unable to synchronously open file (file signature not
found)" for a file that is not HDF5, and for another network's weights print a
warning per layer it skips (104 for MobileNetV2) before failing, naming the
file in neither. `check_config` (called by `locnet_tf.train` right after
`config.validate`) says it in one line naming the file. The Keras core's part of
the config checks: `config.validate` itself is plain data (docs/architecture.md).
"""

import functools
import os
import warnings
import zipfile

import keras

from locnet_tf.model import network as model_lib

# Where an HDF5 file's signature may start (its superblock: byte 0, 512, 1024, ...).
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_HDF5_OFFSETS = (0, 512, 1024, 2048, 4096)
# Backbones that take no weights file (simple) or load and check their own (efficientnet_lite0).
_OWN_CHECK = ("simple", "efficientnet_lite0")


def check_config(config):
    """`check_weights_file` for a config's `--weights` file, when it names one for a keras.applications backbone.

    Run after `config.validate` (which has checked that the file exists); a
    ValueError naming the file otherwise.
    """
    if config.weights in (None, "imagenet") or config.backbone in _OWN_CHECK:
        return
    stat = os.stat(config.weights)
    check_weights_file(config.weights, config.backbone, config.image_size, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def check_weights_file(path, backbone, image_size, size=None, mtime=None):
    """Raises ValueError naming `path` unless it is a Keras weights file that fits `backbone` at `image_size`.

    The file must be HDF5 (`.h5`, `.weights.h5`) or a `.keras` zip archive,
    whose weights load into the bare backbone without a warning. Cached per
    file (`size`, `mtime` tell a changed file), as a command checks its config
    more than once.
    """
    with open(path, "rb") as f:
        head = f.read(max(_HDF5_OFFSETS) + len(_HDF5_SIGNATURE))
    hdf5 = any(head[o : o + len(_HDF5_SIGNATURE)] == _HDF5_SIGNATURE for o in _HDF5_OFFSETS)
    if not hdf5 and not zipfile.is_zipfile(path):
        raise ValueError(
            f"--weights {path}: not a Keras weights file (neither HDF5, as .h5 files are, nor a .keras zip "
            "archive): damaged, or another kind of file?"
        )
    model = model_lib.build_model(backbone=backbone, image_size=image_size, weights=None)
    net = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            net.load_weights(path)
            problem = None
        except Exception as error:  # Keras raises ValueError, KeyError, OSError... for a file that does not fit
            problem = (str(error).strip().splitlines() or [type(error).__name__])[0].split(". Example")[0]
    if problem is None and caught:
        problem = (
            f"{len(caught)} warning{'s' if len(caught) > 1 else ''} from Keras, e.g. {str(caught[0].message)[:200]}"
        )
    if problem is not None:
        raise ValueError(
            f"--weights {path}: these weights do not fit the {backbone} backbone at {image_size} px ({problem})."
        )
