"""Export, step one: the Keras model to a SavedModel and to TFLite flatbuffers.

    write_saved_model(model, path, resize)     serving_default (uint8, any size) + serving_fixed
                                               + serving_encoded (JPEG/PNG bytes)
    write_tflite_source(model, path)           the batch-1 SavedModel TFLite converts from
    convert_tflite(saved_model_dir, quantization, representative=None) -> bytes
    representative_dataset(settings, ...)      int8 calibration images from the training split

`locnet_tf.export.export_model` runs these, then checks the results
(`locnet_tf.export.parity`) and describes them (`locnet_tf.export.model_card`).
"""

import keras
import tensorflow as tf

from locnet_tf.core.command_configs import FORMATS, QUANTIZATIONS  # noqa: F401  (the choices, with the command's flags)
from locnet_tf.export.graph import _serving_functions


class ExportError(RuntimeError):
    """An export that could not be completed or missed a parity gate."""


def write_saved_model(model, path, resize="stretch"):
    """Writes the SavedModel with its three signatures via `keras.export.ExportArchive`.

    `serving_default`: uint8 images of any size, resized inside. `serving_fixed`:
    float32 images at the model size. `serving_encoded`: a batch of encoded
    JPEG/PNG/GIF/BMP files (`decode_encoded_image`; EXIF not applied), decoded
    and resized inside. All three answer the same named outputs.

    Args:
        model: the locnet_tf Keras model.
        path: output folder.
        resize: `"stretch"` or `"letterbox"`, used by `serving_default`.
    """
    image_size = int(model.input_shape[1])
    fixed, any_size, encoded = _serving_functions(model, image_size, resize)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serving_default",
        any_size,
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")],
    )
    archive.add_endpoint(
        "serving_fixed",
        fixed,
        input_signature=[tf.TensorSpec([None, image_size, image_size, 3], tf.float32, name="images")],
    )
    archive.add_endpoint(  # what TF Serving clients of Object Detection API exports send
        "serving_encoded",
        encoded,
        input_signature=[tf.TensorSpec([None], tf.string, name="encoded_images")],
    )
    archive.write_out(str(path), verbose=False)


def write_tflite_source(model, path):
    """Writes the SavedModel that TFLite files are converted from.

    One `serving_default` signature with a static batch of one image at the
    model size: with every shape known, the converter folds the flatten's
    shape arithmetic away and XNNPACK takes the network in fewer pieces (the
    dynamic-batch `serving_fixed` signature converts to SHAPE / PACK ops that
    split the delegated graph).
    """
    image_size = int(model.input_shape[1])
    fixed = _serving_functions(model, image_size, "stretch")[0]
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serving_default",
        fixed,
        input_signature=[tf.TensorSpec([1, image_size, image_size, 3], tf.float32, name="images")],
    )
    archive.write_out(str(path), verbose=False)


def convert_tflite(saved_model_dir, quantization, representative=None):
    """Converts a SavedModel's `serving_default` signature to TFLite bytes.

    Args:
        saved_model_dir: a folder written by `write_tflite_source`.
        quantization: `"float32"`, `"float16"`, `"dynamic"` or `"int8"`.
        representative: for int8, a callable returning an iterator of
            `[float32 (1, S, S, 3) image]` lists (the calibration set).

    Returns:
        bytes of the `.tflite` flatbuffer. Only built-in ops are allowed: a
        model that would need Select-TF (Flex) ops fails to convert.
    """
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir), signature_keys=["serving_default"])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantization == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif quantization == "int8":
        if representative is None:
            raise ValueError("int8 quantization needs a representative dataset.")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        # Raw uint8 pixels in (scale 1, zero point 0: exact); outputs stay float32.
        converter.inference_input_type = tf.uint8
    elif quantization != "float32":
        raise ValueError(f"Unknown quantization {quantization!r}; choose from {QUANTIZATIONS}.")
    return converter.convert()


def representative_dataset(settings, image_size, class_names, samples, seed=0):
    """Calibration images from the training split, through the same preprocessing.

    Returns:
        (callable for `TFLiteConverter.representative_dataset`, count used).
    """
    from locnet_tf.data import pipeline

    dataset = pipeline.make_dataset(
        settings["data"],
        "train",
        image_size=image_size,
        batch_size=1,
        augment=False,
        shuffle=True,
        shuffle_buffer=max(samples, 1),
        seed=seed,
        resize=settings["resize"],
        class_names=class_names,
        data_dir=settings["data_dir"],
        cache=False,
        **settings["source_kwargs"],
    ).take(samples)
    images = [x.numpy() for x, _ in dataset]
    if not images:
        raise ExportError(f"No training images in {settings['data']!r} to calibrate int8 with.")

    def generate():
        for image in images:
            yield [image]

    return generate, len(images)
