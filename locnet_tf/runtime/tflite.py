"""Run a `.tflite` model end to end with numpy, Pillow and LiteRT only (no TensorFlow).

    from locnet_tf.runtime import TFLitePredictor
    model = TFLitePredictor("model_int8.tflite", num_threads=1)
    result = model.predict("photo.jpg")          # a path, or a uint8 HxWx3 array
    result.present, result.class_name, result.score, result.box_pixels

The steps are the training pipeline's, re-done without TensorFlow:
read the photo as a viewer shows it (`locnet_tf.core.image_files.read_image`, EXIF
orientation applied), resize it bit for bit as training does
(`locnet_tf.core.resize.resize`, stretch or letterbox as the model was trained),
run it with LiteRT (`ai_edge_litert`, XNNPACK), decode the named outputs into a
`Prediction` and map the box back to the original image. `locnet_tf.runtime.draw`
draws it; `locnet_tf.runtime.video` reads frames and `locnet_tf.runtime.frame_predictions`
predicts them; `python -m locnet_tf.predict` does all of it from the command line.
`locnet_tf.evaluate.predictor.Predictor` uses this module for `.tflite` files, so both
give the same numbers.

**What a file knows about itself.** An exported `.tflite` carries its metadata
inside (`locnet_tf.runtime.metadata`): class names, presence threshold, input
size and dtype, resize method, box format and the source model's hash. A
`metadata.json` beside the file is used only if it lists this very file (by
its SHA-256): one that belongs to another model, that cannot be read, or that
an older locnet_tf wrote (without the SHA-256s) is refused, never silently
used (`resolve_metadata`), unless the file has its own metadata or the class
names are given, when it is set aside with a warning.
"""

import hashlib
import json
import os
import pathlib
import warnings

import numpy as np

from locnet_tf.core import image_files as images

from locnet_tf.core import resize as resize_lib
from locnet_tf.runtime import metadata as tflite_metadata
from locnet_tf.core import geometry
from locnet_tf.runtime.prediction import OUTPUT_NAMES, decode

METADATA = "metadata.json"


class TFLiteRunner:
    """Runs a `.tflite` model with LiteRT (XNNPACK), one image at a time.

    Args:
        path_or_bytes: str/Path of a `.tflite` file, or its bytes.
        num_threads: int or None (LiteRT's default).
    """

    kind = "tflite"

    def __init__(self, path_or_bytes, num_threads=None):
        from ai_edge_litert.interpreter import Interpreter

        name = "the TFLite model" if isinstance(path_or_bytes, (bytes, bytearray)) else str(path_or_bytes)
        try:
            if isinstance(path_or_bytes, (bytes, bytearray)):
                self.interpreter = Interpreter(model_content=bytes(path_or_bytes), num_threads=num_threads)
            else:
                self.interpreter = Interpreter(model_path=str(path_or_bytes), num_threads=num_threads)
        except (ValueError, RuntimeError) as error:  # LiteRT's messages name no file
            raise ValueError(f"{name}: not a readable TFLite model ({error}): truncated or damaged?") from error
        signatures = self.interpreter.get_signature_list()
        if len(signatures) != 1:
            raise ValueError(f"Expected one signature in the TFLite model, found {sorted(signatures)}.")
        ((self.signature, info),) = signatures.items()
        missing = set(OUTPUT_NAMES) - set(info["outputs"])
        if missing:
            raise ValueError(f"TFLite model lacks the outputs {sorted(missing)}: not a locnet_tf export.")
        self.runner = self.interpreter.get_signature_runner(self.signature)
        ((self.input_name, detail),) = self.runner.get_input_details().items()
        self.input_dtype = detail["dtype"]
        self.input_shape = tuple(int(v) for v in detail["shape"])
        self.num_classes = int(self.runner.get_output_details()["class_scores"]["shape"][-1])

    def __call__(self, images_):
        images_ = np.asarray(images_)
        if self.input_dtype == np.uint8:
            images_ = np.clip(np.round(images_), 0, 255).astype(np.uint8)
        else:
            images_ = images_.astype(self.input_dtype)
        rows = [self.runner(**{self.input_name: image[None]}) for image in images_]
        return {k: np.concatenate([np.asarray(r[k]) for r in rows]) for k in OUTPUT_NAMES}


def sha256(path):
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def json_describes(metadata, path):
    """Whether an export's `metadata.json` lists the file at `path` (same name and SHA-256)."""
    path = pathlib.Path(path)
    digest = None
    for artifact in _artifacts(metadata):
        if artifact.get("sha256") and artifact.get("path") == path.name:
            digest = digest or sha256(path)
            if artifact["sha256"] == digest:
                return True
    return False


def _artifacts(metadata):
    """The artifact entries (dicts) of a `metadata.json`; none when it is not shaped like one."""
    artifacts = metadata.get("artifacts") if isinstance(metadata, dict) else None
    if not isinstance(artifacts, dict):
        return []
    return [a for a in artifacts.values() if isinstance(a, dict)]


def _unreadable(metadata):
    """Why a parsed `metadata.json` is not one an export writes (its shape), or None."""
    if not isinstance(metadata, dict):
        return f"a JSON {type(metadata).__name__}, not an object"
    artifacts = metadata.get("artifacts", {})
    if not isinstance(artifacts, dict):
        return f'its "artifacts" is a JSON {type(artifacts).__name__}, not an object'
    odd = sorted(name for name, artifact in artifacts.items() if not isinstance(artifact, dict))
    if odd:
        return f"its artifact {odd[0]!r} is not an object"
    return None


def _older_export(metadata, path):
    """Whether a `metadata.json` was written by a locnet_tf from before files were listed with their SHA-256.

    Such an export (metadata format 1) lists its files by name only, and its
    `.tflite` files carry no metadata inside: nothing ties the two together.
    """
    if not isinstance(metadata, dict) or not isinstance(metadata.get("format_version", 1), int):
        return False
    listed = [a for a in _artifacts(metadata) if a.get("path") == pathlib.Path(path).name]
    return metadata.get("format_version", 1) < 2 and bool(listed) and not any(a.get("sha256") for a in listed)


def resolve_metadata(path, strict=True):
    """What a `.tflite` file's own metadata says, checked against any `metadata.json` beside it.

    Args:
        path: the `.tflite` file.
        strict: bool. Raise when the file carries no metadata and the json
            beside it is not its own; False: warn, and return no metadata
            (the caller has the class names from elsewhere).

    Returns:
        (metadata dict or None, where it came from: "embedded", the json's
        path, or None).

    Raises:
        ValueError: (`strict`) the file carries no metadata and the
            `metadata.json` beside it cannot be read, belongs to another
            model, or was written by an older locnet_tf (which did not list
            each file's SHA-256).
    """
    path = pathlib.Path(path)
    embedded = tflite_metadata.read(path)
    beside = path.parent / METADATA
    if not beside.is_file():
        return embedded, ("embedded" if embedded else None)
    try:
        described = json.loads(beside.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        described, unreadable = None, str(error)
    else:
        unreadable = _unreadable(described)
    if unreadable is None and json_describes(described, path):
        return (embedded, "embedded") if embedded else (described, str(beside))
    if unreadable is not None:
        reason = f"it cannot be read ({unreadable})"
        problem = f"{path}: carries no metadata, and {beside} beside it cannot be read ({unreadable})"
    elif _older_export(described, path):
        reason = "it was written by an older locnet_tf, which did not list each file's SHA-256"
        problem = (
            f"{path}: made by an older locnet_tf (the file carries no metadata, and {beside} lists files "
            "without their SHA-256, so nothing says it is this file's)"
        )
    else:
        reason = "it does not list this file (no artifact with its name and SHA-256)"
        problem = f"{path}: carries no metadata, and {beside} beside it belongs to another model: {reason}"
    if embedded:
        warnings.warn(f"{beside} is not used for {path}: {reason}; the file's own metadata is.", stacklevel=3)
        return embedded, "embedded"
    if not strict:
        warnings.warn(f"{beside} is not used for {path}: {reason}; the class names given are.", stacklevel=3)
        return None, None
    raise ValueError(f"{problem}. Re-export the model, or give the class names (--classes / class_names=).")


class TFLitePredictor:
    """A `.tflite` model ready to predict images: read, resize, run, decode.

    Args:
        path: the `.tflite` file.
        num_threads: int. LiteRT threads; None for its default.
        resize: `"stretch"` or `"letterbox"`; None takes the model's metadata.
        class_names: list of str; None reads them from the metadata.
        presence_threshold: float; None reads it from the metadata (else 0.5).

    Attributes:
        image_size, class_names, presence_threshold, resize, metadata
        (what the file says about itself, or {}), metadata_source.
    """

    kind = "tflite"

    def __init__(self, path, *, num_threads=None, resize=None, class_names=None, presence_threshold=None):
        self.path = pathlib.Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"No model at {self.path}.")
        meta, self.metadata_source = resolve_metadata(self.path, strict=class_names is None)
        self.metadata = meta or {}
        self.runner = TFLiteRunner(self.path, num_threads=num_threads)
        if class_names is None:
            class_names = self.metadata.get("classes")
        if not class_names:
            raise ValueError(
                f"{self.path}: the file carries no metadata and there is no metadata.json beside it, "
                "so its class names are unknown; give them (--classes a,b,c / class_names=)."
            )
        self.class_names = list(class_names)
        if len(self.class_names) != self.runner.num_classes:
            raise ValueError(
                f"{self.path}: the model scores {self.runner.num_classes} classes but "
                f"{len(self.class_names)} class names were given ({self.class_names})."
            )
        self.presence_threshold = float(
            self.metadata.get("presence_threshold", 0.5) if presence_threshold is None else presence_threshold
        )
        self.image_size = int(self.runner.input_shape[1])
        size = (self.metadata.get("input") or {}).get("size")
        if size is not None and int(size) != self.image_size:
            raise ValueError(f"{self.path}: its metadata says input size {size}, the model takes {self.image_size}.")
        self.resize = resize or self.metadata.get("resize", "stretch")
        if self.resize not in ("stretch", "letterbox"):
            raise ValueError(f"resize must be 'stretch' or 'letterbox', got {self.resize!r}.")

    def preprocess(self, image):
        """uint8 `[H, W, 3]` -> the model input `[S, S, 3]` (uint8; the runner casts)."""
        return resize_lib.resize(image, self.image_size, self.resize)

    def raw(self, batch):
        """Named outputs for images already at the model size (`(B, S, S, 3)`)."""
        return self.runner(batch)

    def predict(self, image):
        """Predicts one image: a path, or an RGB `[H, W, 3]` array of values 0..255 (any size).

        An array that is not uint8 0..255 (a float image in 0..1, values
        above 255, an empty image) is a ValueError saying why
        (`locnet_tf.core.image_files.to_rgb_uint8`).
        """
        if isinstance(image, (str, os.PathLike)):
            image = images.read_image(image)
        image = images.to_rgb_uint8(image)
        height, width = image.shape[:2]
        out = self.runner(self.preprocess(image)[None])
        out["box"] = geometry.boxes_to_original(out["box"], height, width, self.image_size, self.resize)
        return decode(out, self.class_names, self.presence_threshold, height, width)

    def predict_resized(self, model_input, height, width):
        """Predicts a picture already resized to the model input (`[S, S, 3]` uint8, as `preprocess` makes it,
        or FFmpeg's scaler for video: `locnet_tf.runtime.video.scale_to_model`) of a `height x width` original;
        the box is mapped back to the original as `predict` maps it."""
        out = self.runner(np.asarray(model_input, np.uint8)[None])
        out["box"] = geometry.boxes_to_original(out["box"], height, width, self.image_size, self.resize)
        return decode(out, self.class_names, self.presence_threshold, height, width)

    def predict_video(self, source, *, stride=1, smooth=None, exact_resize=False):
        """Yields `(Frame, Prediction)` for a video file, camera index or stream URL.

        See `locnet_tf.runtime.frame_predictions.predict_frames` (smoothing on by default for video; frames
        resized by FFmpeg's scaler unless `exact_resize`).
        """
        from locnet_tf.runtime import frame_predictions

        return frame_predictions.predict_frames(self, source, stride=stride, smooth=smooth, exact_resize=exact_resize)
