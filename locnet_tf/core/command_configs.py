"""The settings of the evaluate, export and predict commands, as plain data.

Each command has one dataclass, as training has `Config`: its fields are the
command's options with their defaults, in one place. The command line is made
from them by the same code as training's (`config.add_field_arguments`): one
flag per field (`max_frames` -> `--max-frames`), the comment after the field
as its --help text, the `# --- GROUP` lines as --help's groups. The functions
behind the commands take their defaults from these classes
(`export_model(formats=ExportConfig.formats)`), and what a command writes
records the settings it ran with, resolved: the export's `metadata.json`
(`export_config`) and the evaluation report (`evaluate_config`). So the
flags, the functions and the records cannot say different things.

Plain data, standard library only: predict imports this on the device install
(no TensorFlow). The positional inputs (the model, predict's sources) are not
settings: they stay in each command's parser.
"""

import dataclasses
from typing import Optional, Tuple

from locnet_tf.core import config as config_lib

# What the export can write (`locnet_tf.export.convert` converts them).
FORMATS = ("saved_model", "tflite")
QUANTIZATIONS = ("float32", "float16", "dynamic", "int8")
# How an image of another size becomes the model's square input (`locnet_tf.core.resize.resize`).
RESIZES = ("stretch", "letterbox")


class _CommandConfig:
    """What the three configs share: made from parsed flags, their flags added to a parser, written as JSON."""

    @classmethod
    def add_arguments(cls, parser):
        """Adds one flag per field to `parser` (grouped, defaults = the fields'); returns `parser`."""
        return config_lib.add_field_arguments(parser, cls)

    @classmethod
    def from_args(cls, args):
        """The config of parsed flags (an `argparse.Namespace` from `add_arguments`' parser), checked."""
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)}).validate()

    def validate(self):
        """Returns the config; raises ValueError naming the flag of the first value out of range."""
        return self

    def to_dict(self):
        """The fields as JSON-ready values (tuples as lists)."""
        return {name: list(v) if isinstance(v, tuple) else v for name, v in dataclasses.asdict(self).items()}


@dataclasses.dataclass
class EvaluateConfig(_CommandConfig):
    """`python -m locnet_tf.evaluate MODEL ...` (`locnet_tf.evaluate.evaluate`, `calibrate`)."""

    # --- data: what the model is evaluated on
    data: Optional[str] = None  # SPEC (default: the run's data, else synthetic)
    data_dir: Optional[str] = None  # TFDS data folder (default: the run's, else TFDS's)
    split: str = "test"  # split to evaluate on
    skip_bad: Optional[bool] = None  # leave bad annotations/images out (reported), not fail (default: the run's)
    # --- presence
    threshold: Optional[float] = None  # presence threshold (default: the model's)
    calibrate: bool = False  # first calibrate the threshold on validation data and store it in the model
    # --- outputs
    out: Optional[str] = None  # report JSON path (pictures go to eval/ beside it)


@dataclasses.dataclass
class ExportConfig(_CommandConfig):
    """`python -m locnet_tf.export MODEL ...` (`locnet_tf.export.export_model`)."""

    # --- outputs
    out: Optional[str] = None  # export folder (default: export/NAME)
    formats: Tuple[str, ...] = FORMATS  # saved_model,tflite (default: both)
    quantize: Tuple[str, ...] = QUANTIZATIONS  # TFLite variants: float32,float16,dynamic,int8 (default: all)
    # --- data
    data: Optional[str] = None  # SPEC (default: the data of config.json beside the model, else synthetic)
    data_dir: Optional[str] = None  # TFDS data folder for synthetic / tfds: specs
    skip_bad: Optional[bool] = None  # leave bad annotations/images out (reported), not fail (default: the run's)
    calibration_samples: int = 200  # training images used to calibrate int8
    # --- parity: every exported file checked against the Keras model; a missed gate fails the export, writing nothing
    split: str = "test"  # split for the parity report
    parity_samples: Optional[int] = None  # limit the parity report to N images (default: the whole split)
    max_float32_diff: float = 1e-4  # largest absolute difference of any float output (SavedModel, float32 TFLite)
    min_float16_iou: float = 0.98  # smallest mean IoU of the float16 TFLite boxes with the Keras ones
    max_int8_loc_drop: float = 0.01  # largest loss of int8 localization accuracy, as a fraction (0.01 = one point)
    threads: Optional[int] = None  # LiteRT threads while checking TFLite files
    # --- console
    quiet: bool = False  # no progress lines and no parity table


@dataclasses.dataclass
class PredictConfig(_CommandConfig):
    """`python -m locnet_tf.predict MODEL SOURCE... ...` (`locnet_tf.predict.iter_predictions`)."""

    # --- model: how it reads a picture
    threads: Optional[int] = None  # LiteRT threads for .tflite models
    resize: Optional[str] = dataclasses.field(default=None, metadata={"choices": RESIZES})  # default: the model's
    threshold: Optional[float] = None  # presence threshold (default: the model's)
    classes: Optional[Tuple[str, ...]] = None  # a,b,c (default: the model's; needed for a .tflite without metadata)
    # --- video: files, cameras and streams
    stride: int = 1  # predict every N-th frame of a video (default 1)
    max_frames: Optional[int] = None  # stop after N frames in all
    smooth: Optional[bool] = None  # steady box, class and presence over time (default: on for video, off for images)
    decoder_threads: int = 0  # FFmpeg decoder threads (default 0: FFmpeg's choice)
    exact_resize: bool = False  # resize video frames bit for bit as training does, not by FFmpeg's scaler (slower)
    # --- outputs
    out: Optional[str] = None  # save annotated pictures (images) and .mp4 files (videos) into this folder
    quiet: bool = False  # no progress bar and no summary line

    def validate(self):
        if self.stride < 1:
            raise ValueError(f"--stride must be at least 1, got {self.stride}.")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"--threads must be at least 1, got {self.threads}.")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"--threshold must be in [0, 1], got {self.threshold}.")
        if self.decoder_threads < 0:
            raise ValueError(f"--decoder-threads must be 0 (FFmpeg's choice) or more, got {self.decoder_threads}.")
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError(f"--max-frames must be at least 1, got {self.max_frames}.")
        return self


COMMANDS = {"evaluate": EvaluateConfig, "export": ExportConfig, "predict": PredictConfig}
