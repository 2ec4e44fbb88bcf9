"""One flat training config, two presets, and its command-line form.

Every field is a command-line flag (`--image-size 96`, `--no-augment`,
`--filters 16,32,64,128`). A preset fills the fields first; flags given on the
command line win. The resolved config is saved as `config.json` in the run folder.
"""

import argparse
import dataclasses
import json
import pathlib
import typing
from typing import Optional, Tuple

from locnet_tf.core import specs


# The fields that describe the network itself (what `transfer.architecture`
# reads back off a model's layers); with `image_size` and `weights` they are
# `build_model`'s options.
ARCHITECTURE_FIELDS = (
    "backbone",
    "filters",
    "depths",
    "head",
    "head_channels",
    "head_units",
    "dropout",
    "class_context",
)

# The choices of the fields that name one (`validate` checks them here; the modules that act on
# them import them from here, so the config needs none of them: docs/architecture.md, floor 0).
BACKBONES = ("simple", "efficientnet_lite0", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0")  # model
MODES = ("default", "lecture")  # losses: the loss mode
BOX_LOSSES = ("mse", "l1", "huber", "giou", "huber_giou")  # losses: the box term of the default mode
MULTI_OBJECT_POLICIES = ("largest", "drop", "fail")  # data.readers.entries: images with several objects
UNKNOWN_POLICIES = ("error", "ignore_object")  # data.readers.entries: labels not in the class names


# `--init pretrained`: the learned start that ships with the package (package data; `python -m
# locnet_tf.train.pretrained` builds it). Here, not in `runs` (which reads configs), so that the config
# checks `--init` without importing the module that imports it.
PRETRAINED = "pretrained"
PRETRAINED_WEIGHTS = pathlib.Path(__file__).resolve().parent.parent / "weights" / "procedural.keras"


def init_path(name):
    """The file `--init NAME` means: the shipped weights for `"pretrained"`, else `name` itself."""
    if str(name) != PRETRAINED:
        return pathlib.Path(name)
    if not PRETRAINED_WEIGHTS.is_file():
        raise FileNotFoundError(
            f"--init {PRETRAINED}: the pretrained weights {PRETRAINED_WEIGHTS} are missing from this install; "
            "build them with `python -m locnet_tf.train.pretrained` (about 15 minutes on 2 cores)."
        )
    return PRETRAINED_WEIGHTS


@dataclasses.dataclass
class Config:
    # --- data
    data: str = "synthetic/large"  # a SPEC: synthetic, csv:PATH, voc:DIR, coco:PATH.json, yolo:PATH, tfds:NAME
    data_dir: Optional[str] = None  # TFDS data folder for synthetic/tfds specs (default: TFDS's)
    class_names: Optional[Tuple[str, ...]] = None  # target classes in order; None: from the data
    class_map: Optional[str] = None  # rename labels, "person=pedestrian,motorbike=motorcycle"
    multi_object: str = "largest"  # images with several objects: largest | drop | fail
    skip_bad: bool = False  # skip bad annotations/images (reported) instead of failing
    resize: str = "stretch"  # stretch | letterbox
    augment: bool = False  # flip / scale-crop / translate / colour on the train split (photos: on)
    cache: bool = True  # keep decoded, resized images in memory after the first epoch

    # --- model
    image_size: int = 128  # square input, pixels
    backbone: str = "simple"  # simple | efficientnet_lite0 | mobilenet_v2 | mobilenet_v3_small | efficientnet_b0
    # efficientnet_lite0: imagenet (the default for it) is the file shipped with the package; others download it
    weights: Optional[str] = None  # None (random) | imagenet | path to a local weights file
    filters: Tuple[int, ...] = (16, 32, 64, 128)  # simple backbone: channels of the stem and stages 1-3
    depths: Tuple[int, ...] = (1, 2, 3)  # simple backbone: 3x3 convs after each stage's strided conv
    head: str = "spatial"  # spatial (soft arg-max box) | dense (the lecture's flatten + dense)
    head_channels: int = 48  # the head's conv (3x3 spatial head, 1x1 dense head)
    head_units: int = 256  # dense layer before the heads
    dropout: float = 0.2
    class_context: bool = False  # spatial head: the class also reads the whole image's pooled features
    init: Optional[str] = None  # start from this model (.keras, run folder or "pretrained"); new class head if needed

    # --- loss
    loss_mode: str = "default"  # default | lecture
    box_loss: str = "huber_giou"  # mse | l1 | huber | giou | huber_giou (default mode)
    pc_weight: float = 1.0
    box_weight: float = 5.0
    class_weight: float = 1.0
    label_smoothing: float = 0.0  # class cross-entropy towards (1 - e) on the true class
    # Dense supervision of the spatial head's box map (default loss mode only;
    # losses.map_terms): it teaches every cell where the object is, which the
    # soft arg-max alone learns slowly (figures: docs/training_experiments.md).
    heatmap_weight: float = 1.0  # where-map vs a Gaussian at the true centre; 0 = off
    vote_weight: float = 5.0  # every cell's own box vote, weighted by that Gaussian; 0 = off
    heatmap_sigma: float = 0.15  # the Gaussian's spread, as a fraction of the box's size

    # --- optimisation
    epochs: int = 8  # passes over the train split (default data: 40,000 images)
    batch_size: int = 64  # global batch (split across replicas)
    learning_rate: float = 2e-3  # peak, after warm-up; cosine decay to 1% of it
    warmup_epochs: float = 0.2
    weight_decay: float = 1e-4  # AdamW
    # A pretrained backbone (--weights or --init; locnet_tf.model.finetune): the new layers train alone first, then all.
    freeze_backbone_epochs: float = 0.0  # epochs at the start in which the pretrained backbone does not move
    backbone_lr_scale: float = 0.1  # the pretrained backbone's learning rate relative to the rest (no weight decay)
    backbone_frozen_blocks: int = 0  # the pretrained backbone's stem and first N blocks do not train (Lite0: 16 blocks)
    ema: float = 0.0  # validate, keep and save an exponential moving average of the weights with this momentum; 0 = off
    steps_per_epoch: Optional[int] = None  # None: one pass over the train split
    validation_steps: Optional[int] = None  # None: the whole validation split
    early_stopping_patience: int = 0  # epochs without a val_score gain (runs.SELECTION); 0 = off
    jit_compile: str = "auto"  # auto | true | false (XLA)
    steps_per_execution: int = 1  # optimizer steps per call into TensorFlow: fewer round trips on small inputs
    # Progressive resizing (spatial head; locnet_tf.train.progressive): the first
    # `progressive_share` of the epochs (rounded down) train at `progressive_size`
    # px, where a step is cheaper, then the weights and optimizer state carry over
    # to the `image_size` model. The small epochs see either the whole image
    # shrunk (`resize`) or a window of it at its own scale that holds the object
    # (`crop`, which did better for the same compute: docs/training_experiments.md).
    progressive_size: int = 96  # px; progressive resizing is off (with a notice) unless below image_size
    progressive_share: float = 0.75  # 0 = off
    progressive_mode: str = "crop"  # crop: windows at the image's scale holding the object | resize: all, shrunk
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
        from locnet_tf.core import outputs

        # Whole or not at all: a full disk or a kill keeps the config the run resumes with.
        outputs.atomic_write(path, json.dumps(self.to_dict(), indent=2, sort_keys=True))

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
        """The config a run saved (`config.json`); a file that is not one is a ValueError naming it.

        A field this version does not know (one a newer locnet_tf added, the
        usual cause) is set aside with a warning on stderr, so the model beside
        the file still predicts, evaluates and exports. Every known field
        must hold a value of its type (`"class_names": 5` is refused); ranges
        are checked where a config is trained (`validate`).
        """
        import os

        path = os.fspath(path)
        with open(path, "rb") as f:
            data = f.read()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ValueError(
                f"{path}: not UTF-8 text (byte {error.start}): not a config.json that train wrote."
            ) from None
        try:
            values = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"{path}: not valid JSON ({error.msg} at line {error.lineno}, column {error.colno})."
            ) from None
        if not isinstance(values, dict):
            raise ValueError(f"{path}: a JSON {_json_kind(values)}, not an object of config fields.")
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            import sys

            print(
                f"warning: {path}: ignored the field{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}, which "
                "this version of locnet_tf does not know (written by a newer one?).",
                file=sys.stderr,
            )
            values = {k: v for k, v in values.items() if k in known}
        # Saved before crop mode existed: progressive resizing shrank the images.
        values.setdefault("progressive_mode", "resize")
        for name, value in values.items():
            # Config(jit_compile=False), saved as it was given, still loads.
            if name == "jit_compile" and isinstance(value, bool):
                continue
            expected = _json_type_problem(value, known[name].type)
            if expected:
                raise ValueError(f'{path}: field "{name}" is {json.dumps(value)}, expected {expected}.')
        return cls.from_dict(values)

    def class_map_dict(self):
        """`class_map` as a dict: `"a=b,c="` -> `{"a": "b", "c": None}` (None ignores the label)."""
        return specs.parse_class_map(self.class_map) if self.class_map else None

    def model_kwargs(self):
        """The model options of this config, as `build_model(**...)` takes them."""
        return {name: getattr(self, name) for name in ("image_size", "weights", *ARCHITECTURE_FIELDS)}

    def source_kwargs(self):
        """The data-source options of this config, as `make_dataset(**...)` takes them.

        Train, evaluate and export all read the data through this, so the
        test split they see is the one training saw.
        """
        kwargs = {"multi_object": self.multi_object, "skip_bad": self.skip_bad}
        if self.class_map:
            kwargs["class_map"] = self.class_map_dict()
        return kwargs


def _json_kind(value):
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number"
    )


def _json_type_problem(value, annotation):
    """What a JSON value of a field annotated `annotation` should have been, or None when it fits."""
    optional = typing.get_origin(annotation) is typing.Union and type(None) in typing.get_args(annotation)
    if optional:
        if value is None:
            return None
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    what = None
    if annotation is bool:
        ok, what = isinstance(value, bool), "true or false"
    elif annotation is int:
        ok, what = isinstance(value, int) and not isinstance(value, bool), "an integer"
    elif annotation is float:
        ok, what = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
    elif annotation is str:
        ok, what = isinstance(value, str), "a string"
    elif typing.get_origin(annotation) is tuple:
        item = typing.get_args(annotation)[0]
        kind = "integers" if item is int else "strings"
        ok = isinstance(value, list) and all(isinstance(v, item) and not isinstance(v, bool) for v in value)
        what = f"a list of {kind}"
    else:
        return None
    if ok:
        return None
    return what + (" or null" if optional else "")


# Real photos: a few hundred to a few thousand images, which need augmentation,
# and the lighter backbone (wider or deeper ones did no better on real photos
# for the same time: docs/real_photos.md). `--preset auto` (the default for
# anything but the built-in data, `locnet_tf.train.recipe`) sets the input size and
# the number of epochs from the data; these are the values without it.
_PHOTOS = {
    "data": "synthetic",  # the 8,000-image synthetic_road, when no --data is given
    "augment": True,
    "image_size": 96,
    "depths": (1, 1, 1),
    "epochs": 32,
    "warmup_epochs": 1.0,
    "progressive_share": 0.0,
    # Small inputs make short steps, where a call into TensorFlow per step costs
    # a third of the time; the maths is the same.
    "steps_per_execution": 8,
}

# Real photos with the pretrained backbone (the `photos_lite0` preset, which `--preset auto`
# chooses for real photos unless `--backbone` says otherwise; `locnet_tf.train.recipe`):
# EfficientNet-Lite0 with the ImageNet weights that ship with the package, its
# BatchNorm in inference mode, the new layers trained alone for the first
# steps and the backbone at 0.3x their learning rate after them
# (`locnet_tf.model.finetune`), batches of 32. The recipe sets the input size and the
# training length from the data; figures in docs/real_photos.md.
_PRETRAINED = {
    **_PHOTOS,
    "backbone": "efficientnet_lite0",
    "weights": "imagenet",
    "image_size": 160,
    "class_context": True,
    "head_channels": 64,
    "batch_size": 32,
    "learning_rate": 1e-3,
    "freeze_backbone_epochs": 1.0,
    # 0.3, not 0.1: hands_loc test loc/IoU/class 0.949 / 0.837 / 0.978 against 0.936 / 0.808 / 0.965
    # at the same 1,200 steps (docs/real_photos.md).
    "backbone_lr_scale": 0.3,
    # 3 (stem and strides 2-4), not 6 (through stride 8 and the first stride-16 block): test
    # loc / IoU 0.904 / 0.824, 0.955 / 0.844, 1.000 / 0.910 on hands363, hands_loc, Caltech against
    # 0.894 / 0.812, 0.952 / 0.840, 1.000 / 0.907, for 10-25% more time per step
    # (docs/real_photos.md, fourth session).
    "backbone_frozen_blocks": 3,
    "steps_per_execution": 4,
    # XLA took over 10 minutes to compile the Lite0 training step on a 2-core CPU.
    "jit_compile": "false",
}

PRESETS = {
    # The synthetic_road model (the Config defaults, which `build_model()` also
    # takes): 8 passes over synthetic_road/large (40,000 images, no augmentation:
    # with that many the model does not memorise them), 6 of them on 96 px windows
    # at the images' own scale (progressive resizing, crop mode), then 2 at the
    # native 128 px, with residual convs at the coarse stages (depths 1, 2, 3).
    # Run: `python -m locnet_tf.train --out runs/default`, about 12 minutes on a
    # 2-core CPU (figures: docs/benchmarks.md).
    "default": {},
    # Your own photos (see _PHOTOS above); set --epochs for your data's size.
    "photos": dict(_PHOTOS),
    # Your own photos, starting from ImageNet features (see _PRETRAINED above).
    "photos_lite0": dict(_PRETRAINED),
    # `make demo`: the photos settings on the 8,000 synthetic images, 8 epochs
    # (4 at 64 px, 4 at 96 px), a few minutes on a CPU.
    "demo": {
        **_PHOTOS,
        "epochs": 8,
        "progressive_size": 64,
        "progressive_share": 0.5,
        "progressive_mode": "resize",
        "steps_per_execution": 1,
    },
    # The learned start that ships with the package (`python -m locnet_tf.train.pretrained`):
    # the photos network on 60,000 formula-driven pictures (`procedural_objects`).
    "pretrain": {
        **_PHOTOS,
        "data": "procedural",
        "epochs": 10,
        "progressive_share": 0.0,
        "calibrate": False,
        "evaluate": False,
    },
    # Seconds: tiny data, tiny model, a few steps. For tests, notebooks and CI.
    "smoke": {
        **_PHOTOS,
        "data": "synthetic/tiny",
        "image_size": 64,
        "filters": (8, 16, 16, 32),
        "head_channels": 16,
        "head_units": 32,
        "epochs": 2,
        "batch_size": 16,
        "steps_per_epoch": 3,
        "steps_per_execution": 1,
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
    """Adds `--preset` and one flag per `Config` field (default None = preset's), grouped as the fields are."""
    parser.add_argument(
        "--preset",
        default="auto",
        choices=["auto"] + sorted(PRESETS),
        help="starting values; auto (default): chosen from --data (locnet_tf.train.recipe)",
    )
    return add_field_arguments(parser, Config, field_defaults=False)


def add_field_arguments(parser, cls, field_defaults=True):
    """Adds one flag per field of the dataclass `cls` to `parser`, in --help groups; returns `parser`.

    The flag is the field's name with dashes (`image_size` -> `--image-size`):
    a bool is `--x` / `--no-x`, a tuple `A,B,...`, an Optional its inner type.
    Its help text is the comment after the field (one line), and a
    `# --- GROUP` line above fields starts the argument group GROUP
    (`# --- GROUP: what it is` gives the group a description). A field's
    metadata may list its `choices`. `field_defaults`: each flag defaults to
    its field's default, which the help text shows unless its comment speaks
    of the default; False: to None (training's, where None leaves the
    preset's value). Shared by training's `Config` and the commands' configs
    (`locnet_tf.core.command_configs`).
    """
    comments, groups = _field_layout(cls)
    sections = {}
    for field in dataclasses.fields(cls):
        flag = "--" + field.name.replace("_", "-")
        kind = field.type
        base = [a for a in typing.get_args(kind) if a is not type(None)]
        if base and typing.get_origin(kind) is typing.Union:
            kind = base[0]
        help_text = comments.get(field.name, "")
        if field_defaults and field.default not in (None, False) and "default" not in help_text:
            shown = ",".join(map(str, field.default)) if isinstance(field.default, tuple) else field.default
            help_text += f" (default: {shown})"
        # argparse formats help with %: "1% of it" would break --help.
        options = {"help": help_text.replace("%", "%%"), "default": field.default if field_defaults else None}
        if "choices" in field.metadata:
            options["choices"] = field.metadata["choices"]
        if kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(kind) is tuple:
            options.update(type=_parse_tuple(typing.get_args(kind)[0]), metavar="A,B,...")
        else:
            options["type"] = kind
        group = groups.get(field.name)
        if group is not None and group not in sections:
            title, _, description = group.partition(":")
            sections[group] = parser.add_argument_group(title.strip(), description.strip() or None)
        (sections[group] if group is not None else parser).add_argument(flag, **options)
    return parser


def _field_comments(cls=Config):
    """The `# comment` after each field of `cls`, reused as its --help text."""
    return _field_layout(cls)[0]


def _field_layout(cls):
    """({field: its comment}, {field: its group}) read off the source of the dataclass `cls`.

    A field's comment is the `# ...` after it on its line; its group is the
    last `# --- GROUP` line above it (none before the first).
    """
    import inspect

    fields = {f.name for f in dataclasses.fields(cls)}
    comments, groups, group = {}, {}, None
    for line in inspect.getsource(cls).splitlines()[1:]:
        line = line.strip()
        if line.startswith(("def ", "@")):  # the methods, after the fields
            break
        if line.startswith("# ---"):
            group = line.lstrip("#- ").strip() or None
        name = line.split(":", 1)[0].strip()
        if name in fields:
            if group is not None:
                groups[name] = group
            if "#" in line:
                comments[name] = line.split("#", 1)[1].strip()
    return comments, groups


# ----------------------------------------------------------------------------
# Validation: every field's range or choices, in one place.

# The smallest and largest input size; sizes must also be a multiple of the
# backbone's stride (`_STRIDES`), or the simple backbone's stride-16 features
# do not line up with its stride-8 ones (and keras.applications networks
# lose pixels at their stride-32 stage).
IMAGE_SIZES = (32, 1024)
_STRIDES = {"simple": 16}
_DEFAULT_STRIDE = 32  # the keras.applications backbones


def validate(config, relations=True):
    """Raises ValueError for the first field of `config` out of its range or choices.

    The message names the flag, the value and what is allowed, e.g.
    "--batch-size must be an integer of at least 1, got 0." Called where a
    config is built from flags (`locnet_tf.train.__main__.config_from_args`) and where training
    starts (`train.train`), so a bad value stops the command before any data
    is read or model built. Plain data: whether a `--weights` file fits its
    backbone is the Keras core's check (`weights_check.check_config`), which
    training runs right after this one.

    `relations=False` leaves out the checks between fields whose other side
    the preset or recipe may still set (`--warmup-epochs` within `--epochs`,
    `--progressive-size` below `--image-size`, `--steps-per-execution`
    dividing `--steps-per-epoch`): for the flags alone, before those are known.

    Raises:
        ValueError: a value out of range, an unknown choice, or an image size
            that does not fit the backbone's stride.
        FileNotFoundError: an `--init` model or a `--weights` file that is not there.
    """
    import math
    import os

    def flag(name):
        return "--" + name.replace("_", "-")

    def integer(name, low, high=None, optional=False):
        value = getattr(config, name)
        if value is None and optional:
            return
        span = f"from {low} to {high}" if high is not None else f"of at least {low}"
        if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
            raise ValueError(f"{flag(name)} must be an integer {span}, got {value!r}.")

    def number(name, low, high=None, low_open=False, high_open=True):
        value = getattr(config, name)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        ok = ok and (value > low if low_open else value >= low)
        if high is not None:
            ok = ok and (value < high if high_open else value <= high)
        if not ok:
            if high is None:
                span = f"{'above' if low_open else 'of at least'} {low:g}"
            else:
                span = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
            raise ValueError(f"{flag(name)} must be a number {span}, got {value!r}.")

    def choice(name, choices, value=None):
        value = getattr(config, name) if value is None else value
        if value not in choices:
            raise ValueError(f"{flag(name)} must be one of {', '.join(map(str, choices))}; got {value!r}.")

    specs.parse_spec(config.data)  # names the known kinds (and the closest one to a typo)
    if config.class_names is not None:
        names = [str(n) for n in config.class_names]
        if not names or len(set(names)) != len(names) or not all(n.strip() for n in names):
            raise ValueError(f"--class-names must be distinct, non-empty names, got {list(config.class_names)}.")
    config.class_map_dict()  # "a=b,c=" or an error naming the bad entry
    choice("multi_object", MULTI_OBJECT_POLICIES)
    choice("resize", ("stretch", "letterbox"))
    choice("backbone", BACKBONES)
    if config.backbone == "simple" and config.weights is not None:
        raise ValueError("--weights: the simple backbone has no pretrained weights; leave --weights out.")
    if config.weights not in (None, "imagenet") and not os.path.isfile(config.weights):
        raise FileNotFoundError(f"--weights {config.weights}: no such weights file (or pass imagenet).")
    # Whether the file's weights fit the backbone is for the Keras core to say (`weights_check.check_config`).
    if len(config.filters) != 4 or not all(isinstance(f, int) and f >= 1 for f in config.filters):
        raise ValueError(f"--filters must be 4 integers of at least 1 (stem, stages 1-3), got {config.filters}.")
    if len(config.depths) != 3 or not all(isinstance(d, int) and d >= 1 for d in config.depths):
        raise ValueError(f"--depths must be 3 integers of at least 1 (convs per stage), got {config.depths}.")
    stride = _STRIDES.get(config.backbone, _DEFAULT_STRIDE)
    low, high = IMAGE_SIZES
    size = config.image_size
    if isinstance(size, bool) or not isinstance(size, int) or not low <= size <= high or size % stride:
        raise ValueError(
            f"--image-size must be a multiple of {stride} (the {config.backbone} backbone's stride) from {low} to "
            f"{high}, e.g. 96 or 128; got {size!r}."
        )
    choice("head", ("spatial", "dense"))
    integer("head_channels", 1)
    integer("head_units", 1)
    number("dropout", 0.0, 1.0)
    if config.init is not None:
        if not os.path.exists(init_path(config.init)):  # "pretrained": the shipped weights
            raise FileNotFoundError(f"--init {config.init}: no such model file or run folder.")
    choice("loss_mode", MODES)
    choice("box_loss", BOX_LOSSES)
    for name in ("pc_weight", "box_weight", "class_weight", "heatmap_weight", "vote_weight"):
        number(name, 0.0)
    number("label_smoothing", 0.0, 1.0)
    number("heatmap_sigma", 0.0, low_open=True)
    integer("epochs", 1)
    integer("batch_size", 1)
    number("learning_rate", 0.0, low_open=True)
    number("warmup_epochs", 0.0, config.epochs if relations else None, high_open=False)
    number("weight_decay", 0.0)
    number("freeze_backbone_epochs", 0.0, config.epochs if relations else None, high_open=False)
    number("backbone_lr_scale", 0.0)
    integer("backbone_frozen_blocks", 0)
    number("ema", 0.0, 1.0)
    integer("steps_per_epoch", 1, optional=True)
    integer("validation_steps", 1, optional=True)
    integer("early_stopping_patience", 0)
    choice("jit_compile", ("auto", "true", "false"), str(config.jit_compile).lower())
    number("progressive_share", 0.0, 1.0)
    choice("progressive_mode", ("crop", "resize"))
    progressive = config.progressive_share > 0 and config.head == "spatial"
    if relations and progressive and config.progressive_size < config.image_size:
        psize = config.progressive_size
        if isinstance(psize, bool) or not isinstance(psize, int) or psize < low or psize % stride:
            raise ValueError(
                f"--progressive-size must be a multiple of {stride} from {low} to below --image-size "
                f"{config.image_size}, got {psize!r} (--progressive-share 0 turns progressive resizing off)."
            )
    integer("steps_per_execution", 1)
    if relations and config.steps_per_epoch and config.steps_per_epoch % config.steps_per_execution:
        # Keras would run whole executions past the epoch's end on the repeated data.
        raise ValueError(
            f"--steps-per-execution {config.steps_per_execution} must divide "
            f"--steps-per-epoch {config.steps_per_epoch}."
        )
    integer("seed", 0, 2**32 - 1)
    choice("strategy", ("default", "mirrored", "multi_worker"))
    integer("gallery_size", 0)
    return config
