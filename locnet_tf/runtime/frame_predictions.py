"""Predictions over the frames of one source: `predict_frames` yields `(Frame, Prediction)`.

    for frame, prediction in predict_frames(predictor, "clip.mp4", stride=2):
        frame.index, prediction.present, prediction.box_pixels

The one loop behind `python -m locnet_tf.predict`, `TFLitePredictor.predict_video`
and `evaluate.Predictor.predict_video`, so that all of them resize and steady
frames alike: a `.tflite` model's video frames are made into model inputs by
FFmpeg's scaler (`locnet_tf.runtime.video.scale_to_model`), and the answers
are steadied over time (`locnet_tf.runtime.smoothing`). Apart from
`locnet_tf.runtime.video` because that module only reads frames; this one
predicts them.
"""

import contextlib
import os

from locnet_tf.runtime import smoothing as smoothing_lib
from locnet_tf.runtime.source_specs import classify
from locnet_tf.runtime.video import Source


def predict_frames(predictor, source, *, stride=1, smooth=None, smoothing=None, exact_resize=False):
    """Predicts every `stride`-th frame of one source; yields `(Frame, Prediction)`.

    Video frames of a `.tflite` model are converted and resized by FFmpeg's
    scaler in one step (`video.scale_to_model`, about 6x less time than the RGB
    conversion and `resize.resize`; within the tolerance of
    tests/test_video_fast.py of the exact path); `exact_resize=True` converts
    each frame to RGB and resizes it bit for bit as training does, as other
    models' frames always are.

    Args:
        predictor: anything with `predict(image)`, `presence_threshold` and
            `class_names` (`locnet_tf.evaluate.predictor.Predictor`,
            `locnet_tf.runtime.TFLitePredictor`).
        source: a `Source`, or one spec naming a single image, video, camera or stream.
        stride: int. Predict every `stride`-th frame.
        smooth: bool or None. Steady the answers over time
            (`locnet_tf.runtime.smoothing.Smoother`); None: on for videos, cameras and
            streams, off for still images.
        smoothing: a `locnet_tf.runtime.smoothing.SmoothingConfig`, or None for the defaults.
        exact_resize: bool. The exact path (see above) instead of FFmpeg's scaler.
    """
    if not isinstance(source, Source):
        kind = classify(source)
        if kind is None:
            raise ValueError(f"{source}: not an image, video, camera or stream.")
        source = Source(kind, os.fspath(source))
    if smooth is None:
        smooth = source.kind != "image"
    smoother = (
        smoothing_lib.Smoother(
            predictor.presence_threshold, predictor.class_names, smoothing or smoothing_lib.SmoothingConfig()
        )
        if smooth
        else None
    )
    fast = None if exact_resize else _scaled_predictor(predictor)
    model_input = (fast.image_size, fast.resize) if fast is not None else None
    # Closed when this generator is (its caller stops early): the source's container with it.
    with contextlib.closing(source.frames(stride, model_input=model_input)) as frames:
        for frame in frames:
            if frame.model_input is not None:
                prediction = fast.predict_resized(frame.model_input, frame.height, frame.width)
            else:
                prediction = predictor.predict(frame.image)
            if smoother is not None:
                prediction = smoother.update(prediction, frame.timestamp or 0.0)
            yield frame, prediction


def _scaled_predictor(predictor):
    """The predictor that takes model inputs made by the scaler (`predict_resized`): a
    `runtime.TFLitePredictor`, or the one inside an `evaluate.Predictor` of a `.tflite`; else None."""
    for candidate in (predictor, getattr(predictor, "lite", None)):
        if candidate is not None and hasattr(candidate, "predict_resized"):
            return candidate
    return None
