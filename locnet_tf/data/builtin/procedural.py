"""`procedural_objects`: formula-driven pictures to pretrain on, a TFDS builder.

A learned start needs pictures with labels, and the package may fetch none.
Formula-driven supervised pretraining (Kataoka et al., "Pre-training without
Natural Images", ACCV 2020: FractalDB; Baradad et al., "Learning to See by
Looking at Noise", NeurIPS 2021: dead-leaves and other procedural images)
recovers much of what ImageNet pretraining gives a network over starting
from random weights. This builder draws such pictures in the form our task
has, one object and its box:

- **Objects**: fractals of `NUM_CATEGORIES` categories. A category is an
  iterated function system (2-4 random contractive affine maps, kept when
  its attractor fills enough of its frame, as FractalDB does); an instance
  perturbs one of its maps (FractalDB's intra-category variation), then gets
  a random rotation, mirror, aspect, size (12-90% of the frame), colouring
  (each map paints its points in its own colour, from a random palette) and
  place. The box is tight around its pixels.
- **Backgrounds**: dead leaves (Lee, Mumford and Huang, 2001): overlapping
  discs, ellipses and rectangles of random colours and power-law sizes, some
  filled with smooth-noise texture, then optional blur; and sensor noise
  over everything. A fifth of the images are background only.

The labels are the fractal categories; `train --init` discards that class
head and keeps what the network learnt about edges, texture and where a
thing is (`locnet_tf.train.pretrained` builds and ships the result).

    import locnet_tf, tensorflow_datasets as tfds
    ds = tfds.load("procedural_objects", split="train")       # 96x96, 64 categories

Features: as `synthetic_road` (``image``, ``bbox``, ``label``, ``present``).
"""

import dataclasses
import io

import numpy as np
import tensorflow_datasets as tfds
from etils import epath
from PIL import Image, ImageDraw, ImageFilter

NUM_CATEGORIES = 64
BACKGROUND_FRACTION = 0.2
# A category's attractor, drawn in a 32x32 frame, must fill at least this
# share of it (FractalDB's filling-rate test): thinner ones read as lines.
MIN_FILL = 0.12
_FILL_GRID = 32


# ----------------------------------------------------------------------------
# Iterated function systems.


def _random_ifs(rng):
    """2-4 contractive affine maps `(A [n, 2, 2], b [n, 2], p [n])`, `p` by |det A|."""
    n = int(rng.integers(2, 5))
    a = rng.uniform(-1.0, 1.0, (n, 2, 2))
    # Contractive: scale each map so its largest singular value is below 0.9.
    sv = np.linalg.svd(a, compute_uv=False)[:, 0]
    a *= (rng.uniform(0.4, 0.9, n) / np.maximum(sv, 1e-6))[:, None, None]
    b = rng.uniform(-1.0, 1.0, (n, 2))
    det = np.abs(np.linalg.det(a)) + 1e-3
    return a, b, det / det.sum()


def _chaos_game(a, b, p, rng, points=4096, steps=24):
    """Points on the attractor of `(a, b, p)`, and which map made each (for colour).

    Runs `points` chains in parallel for `steps` steps (the first few are
    discarded: they have not reached the attractor yet).
    """
    x = rng.uniform(-1.0, 1.0, (points, 2))
    out, which = [], []
    for step in range(steps):
        k = rng.choice(len(p), size=points, p=p)
        x = np.einsum("nij,nj->ni", a[k], x) + b[k]
        if step >= 8:
            out.append(x)
            which.append(k)
    return np.concatenate(out), np.concatenate(which)


def _normalise(xy):
    lo, hi = xy.min(0), xy.max(0)
    return (xy - lo) / np.maximum(hi - lo, 1e-9)


def _fill_rate(xy):
    cells = np.clip((_normalise(xy) * (_FILL_GRID - 1)).round().astype(int), 0, _FILL_GRID - 1)
    return len(np.unique(cells[:, 0] * _FILL_GRID + cells[:, 1])) / _FILL_GRID**2


def make_categories(n=NUM_CATEGORIES, seed=0):
    """`n` IFS categories that pass the filling-rate test, from `seed` (deterministic)."""
    rng = np.random.default_rng(seed)
    categories = []
    while len(categories) < n:
        a, b, p = _random_ifs(rng)
        xy, _ = _chaos_game(a, b, p, rng, points=1024, steps=16)
        if np.all(np.isfinite(xy)) and _fill_rate(xy) >= MIN_FILL:
            categories.append((a, b, p))
    return categories


def render_fractal(category, rng, width, height):
    """One instance of a category as RGBA `[height, width, 4]` uint8 (alpha: its pixels)."""
    a, b, p = (np.array(v, copy=True) for v in category)
    # Intra-category variation: one map's matrix scaled by 0.8-1.2 (FractalDB's weighting).
    k = rng.integers(len(p))
    a[k] *= rng.uniform(0.8, 1.2)
    xy, which = _chaos_game(a, b, p, rng, points=max(1024, width * height // 3), steps=24)
    angle = rng.uniform(0, 2 * np.pi)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    xy = xy @ rot.T
    if rng.random() < 0.5:
        xy[:, 0] = -xy[:, 0]
    finite = np.all(np.isfinite(xy), axis=1)
    xy, which = _normalise(xy[finite]), which[finite]
    cols = np.clip((xy[:, 0] * (width - 1)).round().astype(int), 0, width - 1)
    rows = np.clip((xy[:, 1] * (height - 1)).round().astype(int), 0, height - 1)
    palette = _natural_colours(rng, (len(p), 3))
    if rng.random() < 0.3:  # one colour, shaded per map: shape over colour
        base = _natural_colours(rng, (3,))
        palette = np.clip(base[None] * rng.uniform(0.6, 1.3, (len(p), 1)), 0, 255)
    out = np.zeros((height, width, 4), np.uint8)
    out[rows, cols, :3] = palette[which]
    out[rows, cols, 3] = 255
    # Close the gaps between sampled points (dilate, then erode the outline
    # back), so that the object is a solid thing with a fractal outline.
    grow = 3 if min(width, height) < 24 else 5
    image = Image.fromarray(out, "RGBA")
    alpha = image.getchannel("A").filter(ImageFilter.MaxFilter(grow)).filter(ImageFilter.MinFilter(3))
    colour = image.convert("RGB").filter(ImageFilter.MaxFilter(grow))
    return np.dstack([np.asarray(colour), np.asarray(alpha)])


# ----------------------------------------------------------------------------
# Dead-leaves backgrounds.


def _natural_colours(rng, shape):
    """Colours as photos have them: mostly muted (a grey level plus a smaller tint)."""
    grey = rng.uniform(0, 255, shape[:-1] + (1,))
    tint = rng.normal(0, 40, shape)
    return np.clip(grey + tint, 0, 255)


def _smooth_noise(rng, size, cells):
    small = _natural_colours(rng, (cells, cells, 3)).astype(np.uint8)
    return np.asarray(Image.fromarray(small).resize((size, size), Image.BICUBIC), np.float32)


def dead_leaves(rng, size):
    """A dead-leaves picture `[size, size, 3]` float32 0..255."""
    image = Image.fromarray(_smooth_noise(rng, size, int(rng.integers(2, 6))).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    texture = Image.fromarray(_smooth_noise(rng, size, int(rng.integers(4, 16))).astype(np.uint8))
    for _ in range(int(rng.integers(20, 120))):
        # Power-law radii: many small leaves, a few large ones.
        r = size * 0.02 * (1 - rng.random()) ** -0.7
        r = min(r, size * 0.6)
        cx, cy = rng.uniform(-0.1, 1.1, 2) * size
        rx, ry = r, r * rng.uniform(0.4, 1.6)
        box = [cx - rx, cy - ry, cx + rx, cy + ry]
        colour = tuple(int(v) for v in _natural_colours(rng, (3,)))
        shape = rng.integers(3)
        if rng.random() < 0.25:  # a textured leaf
            mask = Image.new("L", (size, size), 0)
            mdraw = ImageDraw.Draw(mask)
            (mdraw.ellipse if shape < 2 else mdraw.rectangle)(box, fill=255)
            image.paste(texture, (0, 0), mask)
        elif shape < 2:
            draw.ellipse(box, fill=colour)
        else:
            draw.rectangle(box, fill=colour)
    if rng.random() < 0.4:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.0)))
    return np.asarray(image, np.float32)


def render_example(seed, image_size, categories, category=None):
    """One picture: dead leaves, and (unless `category` is None) one fractal of it.

    Returns:
        dict with `image` uint8 `[S, S, 3]`, `present` bool and `bbox`
        (relative `ymin, xmin, ymax, xmax`; `(0, 0, 1, 1)` for background).
    """
    rng = np.random.default_rng(seed)
    s = image_size
    canvas = dead_leaves(rng, s)
    bbox = (0.0, 0.0, 1.0, 1.0)
    if category is not None:
        side = s * rng.uniform(0.12, 0.9)
        aspect = np.exp(rng.uniform(-0.5, 0.5))
        w = int(np.clip(side * np.sqrt(aspect), 6, s))
        h = int(np.clip(side / np.sqrt(aspect), 6, s))
        obj = render_fractal(categories[category], rng, w, h)
        x0, y0 = int(rng.integers(0, s - w + 1)), int(rng.integers(0, s - h + 1))
        alpha = obj[..., 3:4].astype(np.float32) / 255.0
        region = canvas[y0 : y0 + h, x0 : x0 + w]
        canvas[y0 : y0 + h, x0 : x0 + w] = region * (1 - alpha) + obj[..., :3].astype(np.float32) * alpha
        rows = np.flatnonzero(obj[..., 3].any(axis=1))
        cols = np.flatnonzero(obj[..., 3].any(axis=0))
        bbox = ((y0 + rows[0]) / s, (x0 + cols[0]) / s, (y0 + rows[-1] + 1) / s, (x0 + cols[-1] + 1) / s)
    canvas = canvas + rng.standard_normal(canvas.shape).astype(np.float32) * np.float32(rng.uniform(0, 6))
    image = np.clip(np.round(canvas), 0, 255).astype(np.uint8)
    return {"image": image, "present": category is not None, "bbox": bbox}


# ----------------------------------------------------------------------------
# The TFDS builder.


@dataclasses.dataclass
class ProceduralConfig(tfds.core.BuilderConfig):
    """A size of the procedural dataset.

    image_size: int. Side of the square images.
    num_train, num_validation: int. Images per split.
    num_categories: int. Fractal categories (classes).
    seed: int. Everything is drawn from it.
    """

    image_size: int = 96
    num_train: int = 60000
    num_validation: int = 2000
    num_categories: int = NUM_CATEGORIES
    seed: int = 0


_SPLIT_SALT = {"train": 1, "validation": 2}


class ProceduralObjects(tfds.core.GeneratorBasedBuilder):
    """Formula-driven pictures: a fractal of one of 64 categories on dead leaves, or none."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    BUILDER_CONFIGS = [
        ProceduralConfig(name="default", description="96x96; 60000 train, 2000 validation; 64 categories."),
        ProceduralConfig(
            name="tiny",
            description="64x64; 64 train, 16 validation; 4 categories. For tests.",
            image_size=64,
            num_train=64,
            num_validation=16,
            num_categories=4,
        ),
    ]
    DEFAULT_CONFIG_NAME = "default"

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls):
        return epath.Path(__file__)  # see synthetic.SyntheticRoad.code_path

    def _info(self):
        c = self.builder_config
        return self.dataset_info_from_configs(
            description=__doc__.split("\n\n")[0],
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(c.image_size, c.image_size, 3), encoding_format="jpeg"),
                    "bbox": tfds.features.BBoxFeature(),
                    "label": tfds.features.ClassLabel(names=[f"fractal_{i}" for i in range(c.num_categories)]),
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
        }

    def _generate_examples(self, split, n):
        c = self.builder_config
        categories = make_categories(c.num_categories, c.seed)
        salt = _SPLIT_SALT[split]
        kinds = np.random.default_rng((c.seed, salt)).permutation(
            [-1] * int(round(BACKGROUND_FRACTION * n))
            + [i % c.num_categories for i in range(n - int(round(BACKGROUND_FRACTION * n)))]
        )
        for i, kind in enumerate(kinds):
            ex = render_example((c.seed, salt, i), c.image_size, categories, None if kind < 0 else int(kind))
            buf = io.BytesIO()
            Image.fromarray(ex["image"]).save(buf, format="JPEG", quality=95)  # as synthetic_road does
            yield (
                i,
                {
                    "image": buf.getvalue(),
                    "bbox": tfds.features.BBox(*[float(v) for v in ex["bbox"]]),
                    "label": max(int(kind), 0),
                    "present": bool(ex["present"]),
                },
            )
