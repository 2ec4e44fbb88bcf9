"""The serving signatures of the exports and the image-bytes decoder inside their graph."""

import tensorflow as tf

from locnet_tf.evaluate import predictor as inference
from locnet_tf.model.target import vector_to_outputs
from locnet_tf.core.command_configs import FORMATS, QUANTIZATIONS  # noqa: F401  (the choices, with the command's flags)
from locnet_tf.core import geometry
from locnet_tf.data.decode import decode_pixels


def _serving_functions(model, image_size, resize):
    def fixed(images):
        return vector_to_outputs(model(images, training=False))

    def any_size(images):
        shape = tf.shape(images)
        x = inference.preprocess_batch(images, image_size, resize)
        out = vector_to_outputs(model(x, training=False))
        # Boxes relative to the caller's image, not the (letterboxed) model input.
        box = geometry.boxes_to_original_tf(out["box"], shape[1], shape[2], image_size, resize)
        x1, y1, x2, y2 = geometry.target_to_corners(box)
        return out | {"box": box, "box_xyxy": tf.stack([x1, y1, x2, y2], axis=-1)}

    def encoded(data):
        # One image at a time (each has its own size), decoded and resized as the evaluation pipeline does.
        def one(string):
            image = decode_encoded_image(string)
            return inference.preprocess(image, image_size, resize), tf.shape(image)[:2]

        x, sizes = tf.map_fn(
            one,
            data,
            fn_output_signature=(tf.TensorSpec([image_size, image_size, 3], tf.float32), tf.TensorSpec([2], tf.int32)),
        )
        out = vector_to_outputs(model(x, training=False))
        box = geometry.boxes_to_original_tf(out["box"], sizes[:, 0], sizes[:, 1], image_size, resize)
        x1, y1, x2, y2 = geometry.target_to_corners(box)
        return out | {"box": box, "box_xyxy": tf.stack([x1, y1, x2, y2], axis=-1)}

    return fixed, any_size, encoded


def decode_encoded_image(data):
    """A JPEG/PNG/GIF/BMP file's bytes (string scalar) -> uint8 `[H, W, 3]`, as `data.decode.read_image` decodes it.

    The same decoders with the same settings (JPEGs with the accurate integer
    DCT, the first frame of a GIF, grey and RGBA to RGB) and its checks in its
    words: not an image, a JPEG without its end-of-image marker (libjpeg would
    decode it with a warning and grey where the data stops). **EXIF is not
    applied**: the pixels are as stored, as `tf.io.decode_image` and the TF
    Object Detection API's `encoded_image_string_tensor` give them (no
    TensorFlow op reads EXIF; training reads the tag with Pillow, outside the
    graph). A client sends photos upright: `locnet_tf.core.image_files.read_image` (then
    PNG), a browser's canvas, or the `serving_default` signature on pixels.
    """
    from locnet_tf.core import image_files as images

    head = tf.strings.substr(data, 0, 8)
    is_jpeg = tf.equal(tf.strings.substr(head, 0, 2), images.JPEG_SOI)
    known = tf.reduce_any(
        tf.stack(
            [
                is_jpeg,
                tf.equal(head, images.PNG_SIGNATURE),
                tf.equal(tf.strings.substr(head, 0, 4), images.GIF),
                tf.equal(tf.strings.substr(head, 0, 2), images.BMP),
            ]
        )
    )
    size = tf.strings.length(data)
    tail = tf.io.decode_raw(tf.strings.substr(data, tf.maximum(size - 256, 0), 256), tf.uint8)  # cameras pad some
    ends = tf.reduce_any(tf.logical_and(tf.equal(tail[:-1], 0xFF), tf.equal(tail[1:], 0xD9)))
    checks = [
        tf.debugging.Assert(known, [images.NOT_AN_IMAGE]),
        tf.debugging.Assert(tf.logical_or(tf.logical_not(is_jpeg), ends), [images.TRUNCATED_JPEG]),
    ]
    with tf.control_dependencies(checks):
        data = tf.identity(data)
    return decode_pixels(data, is_jpeg)
