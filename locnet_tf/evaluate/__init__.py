"""Floor 4 of docs/architecture.md: a model measured on a split, its threshold calibrated.

    python -m locnet_tf.evaluate runs/latest/model.keras --data synthetic/tiny

`report` (numbers from arrays, numpy), `calibration` (the presence threshold chosen on validation),
`run` (a model on a split: `evaluate`), `pictures` (the evaluation pictures), `predictor` (one
predictor for `.keras`, SavedModel and `.tflite`). The names below load on first use (they import
Keras), so that `python -m locnet_tf.evaluate` reaches `__main__`, whose first import says what to
install when TensorFlow is missing.
"""

__all__ = ["Predictor", "calibrate", "evaluate", "report_from_arrays"]


def __getattr__(name):
    # PEP 562: each public name from its module, imported on first use.
    if name == "evaluate":
        from locnet_tf.evaluate.run import evaluate

        return evaluate
    if name == "calibrate":
        from locnet_tf.evaluate.calibration import calibrate

        return calibrate
    if name == "report_from_arrays":
        from locnet_tf.evaluate.report import report_from_arrays

        return report_from_arrays
    if name == "Predictor":
        from locnet_tf.evaluate.predictor import Predictor

        return Predictor
    raise AttributeError(f"module 'locnet_tf.evaluate' has no attribute {name!r}")
