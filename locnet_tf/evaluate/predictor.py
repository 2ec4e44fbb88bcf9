"""One predictor for every model kind: `.keras`, SavedModel folder, `.tflite` file.

    from locnet_tf.evaluate.predictor import Predictor
    predictor = Predictor("export/latest/model_int8.tflite", num_threads=2)
    result = predictor.predict("photo.jpg")      # a path, or a uint8 HxWx3 array
    result.present, result.class_name, result.score, result.box_pixels

Whatever the model kind, the image goes through the same steps: read it as a
viewer shows it (EXIF orientation applied, `locnet_tf.core.image_files.read_image`),
resize to the model's input size exactly as the data pipeline does for
evaluation (`locnet_tf.core.resize.resize`, bit for bit `pipeline.resize`; stretch
by default), run the model, then read the named outputs

    p_c           (B,)    presence probability
    box           (B, 4)  [b_x, b_y, b_h, b_w] relative to the model input
    box_xyxy      (B, 4)  [x1, y1, x2, y2] relative
    class_id      (B,)    int32 arg-max class
    class_scores  (B, K)  class probabilities given an object

and map the box back to the original image (a no-op for stretch, where
relative coordinates do not change; exact undo of the padding for letterbox).

- `.keras`: loaded with `keras.models.load_model`; class names, presence
  threshold, input size and resize come from the model itself (its
  `TargetVector` layer, `locnet_tf.model.network.preprocessing`), so a `.keras` file
  copied out of its run folder predicts as it did there.
- SavedModel: its `serving_default` signature takes uint8 images of any size and
  resizes inside the graph; class names etc. come from `metadata.json` in its
  `assets.extra/` folder (written by `locnet_tf.export`).
- `.tflite`: `locnet_tf.runtime.TFLitePredictor` (LiteRT, XNNPACK on CPU,
  thread count settable; no TensorFlow needed); class names etc. come from the
  metadata inside the file, or a `metadata.json` beside it that lists it.

TensorFlow is imported only by the functions and model kinds that need it, so
`Predictor("model.tflite")` works where TensorFlow is not installed.
"""

import json
import os
import pathlib

import numpy as np

from locnet_tf.core import image_files as image_lib

from locnet_tf.core import resize as resize_lib
from locnet_tf.runtime import tflite as runtime
from locnet_tf.core import geometry
from locnet_tf.core.records import BOX, IMAGE, PRESENT

# Defined in the TF-free runtime; the names stay importable from here.
from locnet_tf.runtime.prediction import OUTPUT_NAMES, Prediction, decode  # noqa: F401
from locnet_tf.runtime.tflite import METADATA, TFLiteRunner  # noqa: F401

KINDS = ("keras", "saved_model", "tflite")


# ----------------------------------------------------------------------------
# Pieces shared with locnet_tf.export (and so with the exported graphs; the named outputs
# themselves, `vector_to_outputs` and `outputs_to_vector`: `locnet_tf.model.target`).


def preprocess(image, image_size, method="stretch"):
    """One uint8 image `[H, W, 3]` of any size -> float32 `[S, S, 3]` in 0..255.

    Exactly the evaluation pipeline's resize (`pipeline.resize`), so a model
    sees at inference what it saw when it was evaluated. A TensorFlow function
    (exported graphs resize with it); `locnet_tf.core.resize.resize` is its numpy twin.
    """
    import tensorflow as tf

    from locnet_tf.data import pipeline

    example = {IMAGE: tf.convert_to_tensor(image, tf.uint8), BOX: tf.zeros([4]), PRESENT: tf.constant(False)}
    return tf.cast(pipeline.resize(example, int(image_size), method)[IMAGE], tf.float32)


def preprocess_batch(images, image_size, method="stretch"):
    """`preprocess` over a uint8 batch `[B, H, W, 3]` (graph-friendly)."""
    import tensorflow as tf

    return tf.map_fn(
        lambda image: preprocess(image, image_size, method),
        tf.convert_to_tensor(images, tf.uint8),
        fn_output_signature=tf.TensorSpec([image_size, image_size, 3], tf.float32),
    )


def read_metadata(path):
    """The `metadata.json` that `locnet_tf.export` wrote for a model, or None.

    Looks in a SavedModel's `assets.extra/` or its parent folder, or beside a
    file. (`.tflite` files carry their own metadata: `runtime.tflite.resolve_metadata`
    checks a `metadata.json` beside them before using it.)
    """
    path = pathlib.Path(path)
    candidates = (
        [path / "assets.extra" / METADATA, path.parent / METADATA] if path.is_dir() else [path.parent / METADATA]
    )
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


def load_keras(path):
    """`keras.models.load_model(path)`, with errors that name the file and say what is wrong.

    Keras reports a truncated or damaged `.keras` file as "File not found".

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a readable `.keras` model.
    """
    import zipfile

    import keras

    from locnet_tf.model import network as model  # noqa: F401  (registers the model's layers, which the file names)

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such model file.")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: not a readable .keras model (not a zip archive: truncated or damaged?).")
    try:
        return keras.models.load_model(path)
    except (ValueError, KeyError, TypeError, OSError, zipfile.BadZipFile, EOFError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"{path}: not a readable .keras model ({first}).") from error


# ----------------------------------------------------------------------------
# Runners: images at the model size in, named outputs (numpy) out.


def _batched(run, images, batch_size=64):
    # A whole test split in one call would hold every activation at once.
    parts = [run(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
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
        from locnet_tf.model.target import vector_to_outputs  # Keras: loaded with the model, not before

        y = self.model(images, training=False)
        return {k: np.asarray(v) for k, v in vector_to_outputs(y).items()}


class SavedModelRunner:
    """Runs a SavedModel signature; `serving_default` takes uint8 images."""

    kind = "saved_model"

    def __init__(self, path_or_loaded, signature="serving_default"):
        loaded = path_or_loaded
        if isinstance(loaded, (str, pathlib.Path)):
            import tensorflow as tf

            loaded = tf.saved_model.load(str(loaded))
        self.loaded = loaded
        self.signature = signature
        self.function = loaded.signatures[signature]
        spec = self.function.structured_input_signature[1]
        ((self.input_name, tensor_spec),) = spec.items()
        self.input_dtype = tensor_spec.dtype.as_numpy_dtype

    def __call__(self, images):
        images = np.asarray(images)
        if self.input_dtype == np.uint8 and images.dtype != np.uint8:
            images = np.clip(np.round(images), 0, 255).astype(np.uint8)
        return _batched(self._run, images)

    def _run(self, images):
        import tensorflow as tf

        out = self.function(**{self.input_name: tf.convert_to_tensor(images, self.input_dtype)})
        return {k: np.asarray(out[k]) for k in OUTPUT_NAMES}


# ----------------------------------------------------------------------------
# The predictor.


def load_image(path):
    """Reads an image file to uint8 RGB `[H, W, 3]`, EXIF orientation applied.

    `locnet_tf.core.image_files.read_image`: the same checks and messages as the
    pipeline's reader, without TensorFlow.

    Raises:
        FileNotFoundError: no such file.
        DataError: the file is empty, truncated or not an image (the message
            names it).
    """
    return image_lib.read_image(path)


# The resize disagreements already told about: one line each per process (evaluate meets one twice).
_TOLD = set()


def resize_disagreement(model_name, recorded, config_name, configured):
    """Says on stderr, once, that a model's recorded resize wins over a config's other one."""
    import sys

    line = (
        f"warning: {model_name} was trained with resize {recorded!r}, which it records; "
        f"{config_name} says {configured!r}: the model's is used."
    )
    if line not in _TOLD:
        _TOLD.add(line)
        print(line, file=sys.stderr)


def keras_resize(model, path=None):
    """The resize a `.keras` model's inputs need: the one the model records.

    A model saved by locnet_tf 0.2.0 or earlier records none; for it, the
    config.json of the run folder `path` lies in says, else `"stretch"`. When
    the model and that config.json both name one and they differ, the model's
    wins (it is what the weights were trained with; the folder may hold
    another run's config), with a one-line warning on stderr.
    """
    from locnet_tf.model import network as model_lib
    from locnet_tf.core import runs

    recorded = model_lib.resize_method(model)
    config = runs.config_beside(path) if path else None
    if recorded is None:
        return config.resize if config is not None else "stretch"
    if config is not None and config.resize != recorded:
        resize_disagreement(path, recorded, runs.config_path(path), config.resize)
    return recorded


class Predictor:
    """Loads any locnet_tf model and predicts one decoded result per image.

    Evaluation uses it too, for every model kind and for a Keras model in memory
    (calibration passes the model it is about to store a threshold in): calling it
    on images at the model size gives the `(B, 5 + K)` target vectors.

    Args:
        path: a `.keras` file, a SavedModel folder, or a `.tflite` file; or a
            Keras model in memory (a locnet_tf model: it describes itself).
        num_threads: int. Threads for LiteRT (TFLite models); None for its
            default. Keras and SavedModel use TensorFlow's thread settings.
        resize: `"stretch"` or `"letterbox"`; None takes the model's own
            (a `.keras` file's record, an export's metadata).
        class_names: list of str; None reads them from the model / metadata.
        presence_threshold: float; None reads it from the model / metadata.

    Attributes:
        kind: `"keras"`, `"saved_model"` or `"tflite"`.
        path: `pathlib.Path` of the model; None for a model in memory.
        image_size: int. The model's square input size.
        class_names, presence_threshold, resize: as resolved. For a model in
            memory saved before models recorded their resize, `resize` is None:
            evaluation then takes the data config's, `predict` stretches.
    """

    def __init__(self, path, *, num_threads=None, resize=None, class_names=None, presence_threshold=None):
        if not isinstance(path, (str, os.PathLike)):
            self._in_memory(path, resize, class_names, presence_threshold)
            return
        self.path = pathlib.Path(path)
        self.kind = model_kind(self.path)
        if self.kind == "tflite":
            # The TF-free runtime: metadata from inside the file (or a
            # metadata.json that lists it), numpy resize, LiteRT.
            self.lite = runtime.TFLitePredictor(
                self.path,
                num_threads=num_threads,
                resize=resize,
                class_names=class_names,
                presence_threshold=presence_threshold,
            )
            self.runner = self.lite.runner
            self.class_names = self.lite.class_names
            self.presence_threshold = self.lite.presence_threshold
            self.image_size = self.lite.image_size
            self.resize = self.lite.resize
            self.metadata = self.lite.metadata
            return
        meta = read_metadata(self.path) or {}
        if self.kind == "keras":
            from locnet_tf.model import network as model_lib

            model = load_keras(self.path)
            # The model describes itself; a model saved before it recorded its resize
            # takes a metadata.json beside it, then its run's config.json (`keras_resize`).
            own = model_lib.preprocessing(model)
            meta = {
                "classes": own["class_names"],
                "presence_threshold": own["presence_threshold"],
                "input": {"size": own["image_size"]},
                "resize": (own["resize"] is None and meta.get("resize")) or keras_resize(model, self.path),
            }
            self.runner = KerasRunner(model)
        else:
            self.runner = SavedModelRunner(self.path)
        if not meta.get("classes") and class_names is None:
            raise ValueError(
                f"{self.path}: no metadata.json found in it, so the class names are unknown; pass class_names=."
            )
        self.metadata = meta
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

    def _in_memory(self, model, resize, class_names, presence_threshold):
        # A Keras model in memory: everything from the model itself (its `TargetVector` layer).
        import keras

        from locnet_tf.model import network as model_lib

        if not isinstance(model, keras.Model):
            raise TypeError(
                f"Predictor takes a model file or folder (.keras, SavedModel, .tflite) or a Keras model, "
                f"not {type(model).__name__}."
            )

        own = model_lib.preprocessing(model)
        self.path, self.kind, self.metadata = None, "keras", {}
        self.runner = KerasRunner(model)
        self.class_names = list(class_names or own["class_names"])
        self.presence_threshold = own["presence_threshold"] if presence_threshold is None else presence_threshold
        self.image_size = own["image_size"]
        self.resize = resize or own["resize"]

    def raw(self, images):
        """Named outputs for images already at the model size (`(B, S, S, 3)`)."""
        return self.runner(images)

    def __call__(self, images):
        """`(B, 5 + K)` float32 target vectors for images already at the model size (`(B, S, S, 3)`).

        What evaluation reads of any model. A model in memory runs through Keras's
        compiled predict function (`predict_on_batch`), as training evaluates it;
        a model file through its runner, its named outputs put back in one vector
        (`locnet_tf.model.target.outputs_to_vector`, which imports Keras).
        """
        if self.path is None:
            return np.asarray(self.runner.model.predict_on_batch(images), np.float32)
        from locnet_tf.model.target import outputs_to_vector

        return np.asarray(outputs_to_vector(self.raw(images)), np.float32)

    def predict(self, image):
        """Predicts one image: a path, or an RGB `[H, W, 3]` array of values 0..255 (any size).

        Arrays are checked as the runtime checks them (`image_files.to_rgb_uint8`): a
        float image in 0..1, values outside 0..255 or an empty image are a
        ValueError saying why.

        Returns:
            A `Prediction`, boxes relative to / in pixels of this image.
        """
        if self.kind == "tflite":
            return self.lite.predict(image)
        if isinstance(image, (str, pathlib.Path)):
            image = load_image(image)
        image = image_lib.to_rgb_uint8(image)
        height, width = image.shape[:2]
        if self.kind == "saved_model":
            # The graph resizes and maps the box back itself.
            out = self.runner(image[None])
        else:
            method = self.resize or "stretch"  # None: a model in memory that does not record its resize
            out = self.runner(resize_lib.resize(image, self.image_size, method)[None])
            out["box"] = geometry.boxes_to_original(out["box"], height, width, self.image_size, method)
        return decode(out, self.class_names, self.presence_threshold, height, width)

    def predict_many(self, images):
        """`predict` over a list of paths or arrays."""
        return [self.predict(image) for image in images]

    def predict_video(self, source, *, stride=1, smooth=None):
        """Yields `(Frame, Prediction)` for a video file, camera index or stream URL.

        `source` may also be an image file (one frame). Every `stride`-th
        frame is predicted; `smooth` (default: on for video) steadies the box,
        class and presence over time (`locnet_tf.runtime.smoothing`). See
        `locnet_tf.runtime.frame_predictions.predict_frames`.
        """
        from locnet_tf.runtime import frame_predictions

        return frame_predictions.predict_frames(self, source, stride=stride, smooth=smooth)
