"""Floor 1 of docs/architecture.md: a `.tflite` end to end without TensorFlow; imports `core/` only.

    from locnet_tf.runtime import TFLitePredictor
    result = TFLitePredictor("model_int8.tflite").predict("photo.jpg")

`prediction` (Prediction, decode), `tflite` (the LiteRT predictor, metadata.json resolution),
`metadata` (metadata inside a `.tflite`), `video` (frames from one source), `source_specs` (the
command line's sources), `video_writer` (clips out), `frame_predictions` (a source's frames
predicted), `smoothing` (boxes over frames), `draw` (a prediction on its image).
"""

from locnet_tf.runtime.prediction import Prediction
from locnet_tf.runtime.tflite import TFLitePredictor

__all__ = ["Prediction", "TFLitePredictor"]
