"""One predictor for every model kind: `.keras`, SavedModel folder, `.tflite` file.

    from locnet_tf.inference import Predictor
    predictor = Predictor("export/latest/model_int8.tflite", num_threads=2)
    result = predictor.predict("photo.jpg")      # a path, or a uint8 HxWx3 array
    result.present, result.class_name, result.score, result.box_pixels

Whatever the model kind, the image goes through the same steps: resize to the
model's input size exactly as the data pipeline does for evaluation
(`locnet_tf.data.pipeline.resize`, stretch by default), run the model, then
read the named outputs

    p_c           (B,)    presence probability
    box           (B, 4)  [b_x, b_y, b_h, b_w] relative to the model input
    box_xyxy      (B, 4)  [x1, y1, x2, y2] relative
    class_id      (B,)    int32 arg-max class
    class_scores  (B, K)  class probabilities given an object

and map the box back to the original image (a no-op for stretch, where
relative coordinates do not change; exact undo of the padding for letterbox).

- `.keras`: loaded with `keras.models.load_model`; class names and presence
  threshold come from the model's `TargetVector` layer.
- SavedModel: its `serving_default` signature takes uint8 images of any size and
  resizes inside the graph; class names etc. come from `metadata.json` in its
  `assets.extra/` folder (written by `locnet_tf.export`).
- `.tflite`: run with LiteRT (`ai_edge_litert.interpreter`, XNNPACK on CPU,
  thread count settable); class names etc. come from `metadata.json` beside
  the file (the export folder).
"""

import dataclasses
import json
import os
import pathlib

import numpy as np
import tensorflow as tf
from locnet_tf import boxes as box_lib
from locnet_tf.data import pipeline
from locnet_tf.data.records import BOX, IMAGE, PRESENT, DataError

OUTPUT_NAMES = ("p_c", "box", "box_xyxy", "class_id", "class_scores")
METADATA = "metadata.json"
KINDS = ("keras", "saved_model", "tflite")


# ----------------------------------------------------------------------------
# Pieces shared with locnet_tf.export (and so with the exported graphs).


def vector_to_outputs(y):
    """Splits `(B, 5 + K)` target vectors into the named outputs of exports.

    Works on tensors inside a traced graph and on numpy arrays alike (returns
    tensors; wrap with `np.asarray` for numpy).
    """
    y = tf.convert_to_tensor(y, tf.float32)
    box = y[:, 1:5]
    x1, y1, x2, y2 = box_lib.target_to_corners(box)
    scores = y[:, 5:]
    return {
        "p_c": y[:, 0],
        "box": box,
        "box_xyxy": tf.stack([x1, y1, x2, y2], axis=-1),
        # tf.argmax, not keras.ops.argmax: Keras's TF argmax special-cases -0.0
        # with a BitwiseAnd that TFLite has no built-in kernel for.
        "class_id": tf.argmax(scores, axis=-1, output_type=tf.int32),
        "class_scores": scores,
    }


def outputs_to_vector(outputs):
    """The inverse of `vector_to_outputs`: named outputs -> `(B, 5 + K)` numpy."""
    p_c = np.asarray(outputs["p_c"], np.float32).reshape(-1, 1)
    box = np.asarray(outputs["box"], np.float32).reshape(len(p_c), 4)
    scores = np.asarray(outputs["class_scores"], np.float32).reshape(len(p_c), -1)
    return np.concatenate([p_c, box, scores], axis=1)


def preprocess(image, image_size, method="stretch"):
    """One uint8 image `[H, W, 3]` of any size -> float32 `[S, S, 3]` in 0..255.

    Exactly the evaluation pipeline's resize (`pipeline.resize`), so a model
    sees at inference what it saw when it was evaluated.
    """
    example = {IMAGE: tf.convert_to_tensor(image, tf.uint8), BOX: tf.zeros([4]), PRESENT: tf.constant(False)}
    return tf.cast(pipeline.resize(example, int(image_size), method)[IMAGE], tf.float32)


def preprocess_batch(images, image_size, method="stretch"):
    """`preprocess` over a uint8 batch `[B, H, W, 3]` (graph-friendly)."""
    return tf.map_fn(
        lambda image: preprocess(image, image_size, method),
        tf.convert_to_tensor(images, tf.uint8),
        fn_output_signature=tf.TensorSpec([image_size, image_size, 3], tf.float32),
    )


def boxes_to_original(box, height, width, image_size, method="stretch"):
    """Maps target-format boxes on the model input back to the original image.

    Args:
        box: `(..., 4)` `[b_x, b_y, b_h, b_w]` relative to the model input.
        height: int. Original image height in pixels.
        width: int. Original image width in pixels.
        image_size: int. Model input size.
        method: `"stretch"` (relative boxes are unchanged) or `"letterbox"`.

    Returns:
        float32 tensor `(..., 4)`: the boxes relative to the original image.
    """
    box = tf.convert_to_tensor(box, tf.float32)
    if method == "stretch":
        return box
    new_h, new_w, top, left = [
        tf.cast(v, tf.float32) for v in pipeline.letterbox_geometry(height, width, image_size, image_size)
    ]
    cx, cy, bh, bw = tf.unstack(box, 4, axis=-1)
    size = float(image_size)
    return tf.stack([
        (cx * size - left) / new_w,
        (cy * size - top) / new_h,
        bh * size / new_h,
        bw * size / new_w,
    ], axis=-1)


def read_metadata(path):
    """The `metadata.json` that `locnet_tf.export` wrote for a model, or None.

    Looks beside a `.tflite` file, and in a SavedModel's `assets.extra/` or its
    parent folder.
    """
    path = pathlib.Path(path)
    candidates = [path / "assets.extra" / METADATA, path.parent / METADATA] if path.is_dir() else [
        path.parent / METADATA
    ]
    for candidate in candidates:
        if candidate.is_file():
            return json.loads(candidate.read_text())
    return None


def model_kind(path):
    """`"keras"`, `"saved_model"` or `"tflite"` for a model path."""
    path = pathlib.Path(path)
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            return "saved_model"
        raise ValueError(f"{path} is a folder without saved_model.pb: not a SavedModel.")
    if not path.is_file():
        raise FileNotFoundError(f"No model at {path}.")
    if path.suffix == ".keras":
        return "keras"
    if path.suffix == ".tflite":
        return "tflite"
    raise ValueError(f"{path}: expected a .keras file, a SavedModel folder or a .tflite file.")


# ----------------------------------------------------------------------------
# Runners: images at the model size in, named outputs (numpy) out.


def _batched(run, images, batch_size=64):
    # A whole test split in one call would hold every activation at once.
    parts = [run(images[i:i + batch_size]) for i in range(0, len(images), batch_size)]
    return {k: np.concatenate([p[k] for p in parts]) for k in OUTPUT_NAMES}


class KerasRunner:
    """Runs a Keras model; `images` float32 `(B, S, S, 3)` in 0..255."""

    kind = "keras"

    def __init__(self, model):
        self.model = model
        self.input_dtype = np.float32

    def __call__(self, images):
        return _batched(self._run, np.asarray(images, np.float32))

    def _run(self, images):
        y = self.model(images, training=False)
        return {k: np.asarray(v) for k, v in vector_to_outputs(y).items()}


class SavedModelRunner:
    """Runs a SavedModel signature; `serving_default` takes uint8 images."""

    kind = "saved_model"

    def __init__(self, path_or_loaded, signature="serving_default"):
        loaded = path_or_loaded
        if isinstance(loaded, (str, pathlib.Path)):
            loaded = tf.saved_model.load(str(loaded))
        self.loaded = loaded
        self.signature = signature
        self.function = loaded.signatures[signature]
        spec = self.function.structured_input_signature[1]
        (self.input_name, tensor_spec), = spec.items()
        self.input_dtype = tensor_spec.dtype.as_numpy_dtype

    def __call__(self, images):
        images = np.asarray(images)
        if self.input_dtype == np.uint8 and images.dtype != np.uint8:
            images = np.clip(np.round(images), 0, 255).astype(np.uint8)
        return _batched(self._run, images)

    def _run(self, images):
        out = self.function(**{self.input_name: tf.convert_to_tensor(images, self.input_dtype)})
        return {k: np.asarray(out[k]) for k in OUTPUT_NAMES}


class TFLiteRunner:
    """Runs a `.tflite` model with LiteRT (XNNPACK), one image at a time.

    Args:
        path_or_bytes: str/Path of a `.tflite` file, or its bytes.
        num_threads: int or None (LiteRT's default).
    """

    kind = "tflite"

    def __init__(self, path_or_bytes, num_threads=None):
        # Imported here: only TFLite users need LiteRT loaded.
        from ai_edge_litert.interpreter import Interpreter

        if isinstance(path_or_bytes, (bytes, bytearray)):
            self.interpreter = Interpreter(model_content=bytes(path_or_bytes), num_threads=num_threads)
        else:
            self.interpreter = Interpreter(model_path=str(path_or_bytes), num_threads=num_threads)
        signatures = self.interpreter.get_signature_list()
        if len(signatures) != 1:
            raise ValueError(f"Expected one signature in the TFLite model, found {sorted(signatures)}.")
        (self.signature, info), = signatures.items()
        missing = set(OUTPUT_NAMES) - set(info["outputs"])
        if missing:
            raise ValueError(f"TFLite model lacks the outputs {sorted(missing)}: not a locnet_tf export.")
        self.runner = self.interpreter.get_signature_runner(self.signature)
        (self.input_name, detail), = self.runner.get_input_details().items()
        self.input_dtype = detail["dtype"]
        self.input_shape = tuple(int(v) for v in detail["shape"])

    def __call__(self, images):
        images = np.asarray(images)
        if self.input_dtype == np.uint8:
            images = np.clip(np.round(images), 0, 255).astype(np.uint8)
        else:
            images = images.astype(self.input_dtype)
        rows = [self.runner(**{self.input_name: image[None]}) for image in images]
        return {k: np.concatenate([np.asarray(r[k]) for r in rows]) for k in OUTPUT_NAMES}


# ----------------------------------------------------------------------------
# The predictor.


@dataclasses.dataclass(frozen=True)
class Prediction:
    """What the model says about one image.

    present: bool. `p_c >= presence_threshold`.
    p_c: float. Presence probability.
    class_id: int. Most likely class (meaningful when present).
    class_name: str. Its name.
    class_score: float. Its probability given an object.
    score: float. `p_c * class_score`.
    box: list of 4 floats. `[b_x, b_y, b_h, b_w]` relative to the original image.
    box_xyxy: list of 4 floats. `[x1, y1, x2, y2]` relative.
    box_pixels: list of 4 floats. `[x1, y1, x2, y2]` in original-image pixels.
    image_size: (height, width) of the original image.
    """

    present: bool
    p_c: float
    class_id: int
    class_name: str
    class_score: float
    score: float
    box: list
    box_xyxy: list
    box_pixels: list
    image_size: tuple

    def to_dict(self):
        return dataclasses.asdict(self) | {"image_size": list(self.image_size)}


def load_image(path):
    """Reads an image file to uint8 RGB `[H, W, 3]` (the pipeline's checked reader).

    Raises:
        FileNotFoundError: no such file.
        DataError: the file is empty, truncated or not an image (the message
            names it).
    """
    path = str(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such image file.")
    try:
        return pipeline.read_image(path).numpy()
    except tf.errors.InvalidArgumentError as error:
        # One of the reader's own checks, else the decoder's first line.
        found = [problem for problem in pipeline.IMAGE_PROBLEMS if problem in error.message]
        reason = found[0] if found else error.message.split("\n")[0]
        raise DataError(f"{path}: {reason}.") from None


def _run_resize(model_path):
    """The resize a `.keras` model was trained with: its run folder's config.json, else stretch."""
    config_path = pathlib.Path(model_path).parent / "config.json"
    if config_path.is_file():
        from locnet_tf.config import Config

        return Config.load(config_path).resize
    return "stretch"


class Predictor:
    """Loads any locnet_tf model and predicts one decoded result per image.

    Args:
        path: a `.keras` file, a SavedModel folder, or a `.tflite` file.
        num_threads: int. Threads for LiteRT (TFLite models); None for its
            default. Keras and SavedModel use TensorFlow's thread settings.
        resize: `"stretch"` or `"letterbox"`; None takes the export's
            metadata (or stretch).
        class_names: list of str; None reads them from the model / metadata.
        presence_threshold: float; None reads it from the model / metadata.

    Attributes:
        kind: `"keras"`, `"saved_model"` or `"tflite"`.
        image_size: int. The model's square input size.
        class_names, presence_threshold, resize: as resolved.
    """

    def __init__(self, path, *, num_threads=None, resize=None, class_names=None, presence_threshold=None):
        self.path = pathlib.Path(path)
        self.kind = model_kind(self.path)
        meta = read_metadata(self.path) or {}
        if self.kind == "keras":
            import keras

            from locnet_tf import model as model_lib

            model = keras.models.load_model(self.path)
            meta = {
                "classes": model_lib.class_names(model),
                "presence_threshold": model_lib.presence_threshold(model),
                "input": {"size": int(model.input_shape[1])},
                "resize": meta.get("resize") or _run_resize(self.path),
            }
            self.runner = KerasRunner(model)
        elif self.kind == "saved_model":
            self.runner = SavedModelRunner(self.path)
        else:
            self.runner = TFLiteRunner(self.path, num_threads=num_threads)
            meta.setdefault("input", {"size": self.runner.input_shape[1]})
        if not meta.get("classes") and class_names is None:
            raise ValueError(
                f"{self.path}: no metadata.json found beside it, so the class names are unknown; "
                "pass class_names=."
            )
        self.class_names = list(class_names or meta["classes"])
        self.presence_threshold = float(
            meta.get("presence_threshold", 0.5) if presence_threshold is None else presence_threshold
        )
        self.image_size = int(meta["input"]["size"])
        self.resize = resize or meta.get("resize", "stretch")
        if self.kind == "saved_model" and self.resize != meta.get("resize", "stretch"):
            raise ValueError(
                f"This SavedModel resizes with {meta.get('resize', 'stretch')!r} inside its graph; "
                f"resize={self.resize!r} cannot be applied."
            )

    def raw(self, images):
        """Named outputs for images already at the model size (`(B, S, S, 3)`)."""
        return self.runner(images)

    def predict(self, image):
        """Predicts one image: a path, or a uint8 `[H, W, 3]` array (any size).

        Returns:
            A `Prediction`, boxes relative to / in pixels of this image.
        """
        if isinstance(image, (str, pathlib.Path)):
            image = load_image(image)
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f"Expected an RGB image [H, W, 3], got shape {image.shape}.")
        if image.dtype != np.uint8:
            image = np.clip(np.round(image), 0, 255).astype(np.uint8)
        height, width = image.shape[:2]
        if self.kind == "saved_model":
            # The graph resizes and maps the box back itself.
            out = self.runner(image[None])
        else:
            out = self.runner(preprocess(image, self.image_size, self.resize).numpy()[None])
            out["box"] = boxes_to_original(out["box"], height, width, self.image_size, self.resize).numpy()
        return self._decode(out, height, width)

    def predict_many(self, images):
        """`predict` over a list of paths or arrays."""
        return [self.predict(image) for image in images]

    def _decode(self, out, height, width):
        box = np.asarray(out["box"], np.float32).reshape(4)
        scores = np.asarray(out["class_scores"], np.float32).reshape(-1)
        class_id = int(np.asarray(out["class_id"]).reshape(-1)[0])
        p_c = float(np.asarray(out["p_c"]).reshape(-1)[0])
        corners = np.asarray(box_lib.from_target(box, "rel_xyxy"))
        return Prediction(
            present=p_c >= self.presence_threshold,
            p_c=p_c,
            class_id=class_id,
            class_name=self.class_names[class_id],
            class_score=float(scores[class_id]),
            score=p_c * float(scores[class_id]),
            box=[float(v) for v in box],
            box_xyxy=[float(v) for v in corners],
            box_pixels=[float(v) for v in corners * [width, height, width, height]],
            image_size=(int(height), int(width)),
        )
