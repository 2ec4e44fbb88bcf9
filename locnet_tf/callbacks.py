"""The Keras callbacks of a training run that Keras does not have as they are needed.

Training also uses Keras's own: `BackupAndRestore`, `CSVLogger`, `TensorBoard`,
`TerminateOnNaN`, `EarlyStopping`, `SwapEMAWeights`.
"""

import os
import pathlib

import keras

from locnet_tf import losses as losses_lib
from locnet_tf import runs


class BestCheckpoint(keras.callbacks.ModelCheckpoint):
    """`ModelCheckpoint(save_best_only=True)` that saves the model itself, whole or not at all.

    Two things Keras's checkpoint does not do, and why this subclass exists:

    - A `MapSupervision` wrapper is what `fit` trains; the file gets the model
      it wraps, which is what evaluation, export and prediction load.
    - The model is saved beside model.keras, then renamed over it, so a full
      disk or a kill mid-save keeps the previous best model.

    The best score across a resume is Keras's own `initial_value_threshold`
    (`runs.best_so_far` reads it from history.csv).
    """

    def set_model(self, model):
        super().set_model(losses_lib.model_of(model))

    def _save_model(self, epoch, batch, logs):
        final = self.filepath
        partial = pathlib.Path(final).with_name(".partial-" + pathlib.Path(final).name)
        self.filepath = str(partial)
        try:
            super()._save_model(epoch, batch, logs)
            if partial.exists():  # saved: an improvement
                os.replace(partial, final)
        except OSError as error:
            raise OSError(error.errno, f"cannot save the model ({error.strerror or error})", final) from error
        finally:
            self.filepath = final
            partial.unlink(missing_ok=True)


class LogValue(keras.callbacks.Callback):
    """Adds a constant to each epoch's logs (before CSVLogger writes them)."""

    def __init__(self, name, value):
        super().__init__()
        self.name, self.value = name, value

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs[self.name] = self.value


class CurvesPlot(keras.callbacks.Callback):
    """Redraws curves.png from history.csv after every epoch (so it is live)."""

    def __init__(self, history_path, out_path):
        super().__init__()
        self.history_path, self.out_path = history_path, out_path

    def on_epoch_end(self, epoch, logs=None):
        from locnet_tf import plots

        history = runs.read_history(self.history_path)
        if history:
            plots.training_curves(history, self.out_path)
