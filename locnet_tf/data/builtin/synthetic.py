"""`synthetic_road`: the built-in road-scene dataset, a TFDS builder.

Every image is drawn procedurally with PIL from a seed, so the dataset builds
locally, deterministically (same seed, same bytes) and with no download::

    import locnet_tf.data.builtin.synthetic  # registers the builder (so does locnet_tf.data.pipeline)
    import tensorflow_datasets as tfds
    ds = tfds.load("synthetic_road", split="train")          # 128x128, default
    ds = tfds.load("synthetic_road/large", split="train")    # 5x the training images
    ds = tfds.load("synthetic_road/tiny", split="test")      # 64x64, for tests

Features of one example:

- ``image``: uint8 ``[S, S, 3]`` (JPEG, quality 95, inside the TFRecords).
- ``bbox``: ``tfds.features.BBox`` (relative ``ymin, xmin, ymax, xmax``).
- ``label``: ``ClassLabel(names=["pedestrian", "car", "motorcycle"])``.
- ``present``: bool. False for background images (clutter only). **Background
  images carry a dummy box ``(0, 0, 1, 1)`` and label 0**: both are
  "don't care" and must be ignored (the pipeline encodes them as zeros).

The scenes are drawn by `locnet_tf.data.builtin.synthetic_draw` (what is drawn, and
the box rule, are described there); this module is the TFDS builder around it.
"""

import dataclasses
import io

import numpy as np
from etils import epath
import tensorflow_datasets as tfds
from PIL import Image

# The drawing, re-exported: `synthetic.render_example` etc. keep working.
from locnet_tf.data.builtin.synthetic_draw import (  # noqa: F401
    BACKGROUND_FRACTION,
    CLASS_NAMES,
    MAX_OCCLUDED,
    render_example,
    split_kinds,
)


# ----------------------------------------------------------------------------
# The TFDS builder.


@dataclasses.dataclass
class SyntheticRoadConfig(tfds.core.BuilderConfig):
    """A size of the synthetic dataset.

    image_size: int. Side of the square images in pixels.
    num_train: int. Training images.
    num_validation: int. Validation images.
    num_test: int. Test images.
    seed: int. Everything is drawn from this seed.
    """

    image_size: int = 128
    num_train: int = 8000
    num_validation: int = 1000
    num_test: int = 1000
    seed: int = 0


_SPLIT_SALT = {"train": 1, "validation": 2, "test": 3}


class SyntheticRoad(tfds.core.GeneratorBasedBuilder):
    """Procedural road scenes: one pedestrian, car or motorcycle, or none."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    BUILDER_CONFIGS = [
        SyntheticRoadConfig(
            name="default",
            description="128x128 images; 8000 train, 1000 validation, 1000 test.",
        ),
        SyntheticRoadConfig(
            # The same validation and test images as "default" (every image is
            # drawn from its split and index alone), five times the training
            # images: without augmentation a small model memorises 8000.
            name="large",
            description="128x128 images; 40000 train, and the same 1000 validation and 1000 test as default.",
            num_train=40000,
        ),
        SyntheticRoadConfig(
            name="tiny",
            description="64x64 images; 64 train, 24 validation, 24 test. For tests.",
            image_size=64,
            num_train=64,
            num_validation=24,
            num_test=24,
        ),
    ]
    DEFAULT_CONFIG_NAME = "default"

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls):
        # TFDS's own lookup touches `importlib_resources`, a backport it only
        # installs on Python < 3.9, and fails for builders outside its package.
        return epath.Path(__file__)

    def _info(self):
        s = self.builder_config.image_size
        return self.dataset_info_from_configs(
            description=__doc__.split("\n\n")[0],
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(s, s, 3), encoding_format="jpeg"),
                    "bbox": tfds.features.BBoxFeature(),
                    "label": tfds.features.ClassLabel(names=list(CLASS_NAMES)),
                    "present": tfds.features.Scalar(dtype=np.bool_),
                }
            ),
            supervised_keys=None,
            homepage="https://github.com/locnet-tf/locnet_tf",
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # everything is generated locally
        c = self.builder_config
        return {
            "train": self._generate_examples("train", c.num_train),
            "validation": self._generate_examples("validation", c.num_validation),
            "test": self._generate_examples("test", c.num_test),
        }

    def _generate_examples(self, split, n):
        c = self.builder_config
        salt = _SPLIT_SALT[split]
        kinds = split_kinds(n, (c.seed, salt))
        for i, kind in enumerate(kinds):
            ex = render_example((c.seed, salt, i), c.image_size, None if kind < 0 else int(kind))
            buf = io.BytesIO()
            # Encoded here with PIL: TFDS's numpy path runs a TF graph per image
            # (~16 ms). JPEG at quality 95 takes 0.15 ms and 8 KB against PNG's
            # 2 ms and 31 KB (the noise defeats PNG), which keeps the default
            # config's build under a minute; boxes come from the drawing mask,
            # so compression cannot move them.
            Image.fromarray(ex["image"]).save(buf, format="JPEG", quality=95)
            yield (
                i,
                {
                    "image": buf.getvalue(),
                    "bbox": tfds.features.BBox(*[float(v) for v in ex["bbox"]]),
                    "label": max(int(kind), 0),
                    "present": bool(ex["present"]),
                },
            )
