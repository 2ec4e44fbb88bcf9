"""Floor 5 of docs/architecture.md: a `.keras` model to SavedModel and TFLite, with a parity report.

    python -m locnet_tf.export runs/latest/model.keras --out export/latest

`export_model` (`run`) runs the steps in order; each step is its own module: `graph` (the serving
signatures), `convert` (SavedModel, TFLite), `parity` (the checks and gates), `model_card`
(metadata.json, the model card, the metadata inside each `.tflite`).
"""

import warnings

__all__ = ["export_model"]

# The names 0.2.0 re-exported from `locnet_tf.export` and that code outside it used: each warns
# and comes from its module until 0.4.0.
_MOVED = {
    "Gates": "parity",
    "check_gates": "parity",
    "data_settings": "parity",
    "ExportError": "convert",
    "convert_tflite": "convert",
    "write_saved_model": "convert",
    "write_tflite_source": "convert",
    "tflite_file_metadata": "model_card",
    "QUANTIZATIONS": "command_configs",
}


def __getattr__(name):
    # PEP 562: `export_model` imports TensorFlow on first use, so that `python -m locnet_tf.export`
    # reaches `__main__`, whose first import says what to install when TensorFlow is missing.
    if name == "export_model":
        from locnet_tf.export.run import export_model

        return export_model
    # The old names, with a DeprecationWarning.
    if name not in _MOVED:
        raise AttributeError(f"module 'locnet_tf.export' has no attribute {name!r}")
    from locnet_tf.core import command_configs
    from locnet_tf.export import convert, model_card, parity

    module = {"parity": parity, "convert": convert, "model_card": model_card, "command_configs": command_configs}[
        _MOVED[name]
    ]
    warnings.warn(
        f"locnet_tf.export.{name} moved to {module.__name__}.{name}; the old name goes in 0.4.0",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(module, name)
