"""The Keras callbacks of a training run that Keras does not have as they are needed.

Every file they write is written whole or not at all (a temporary name,
renamed into place), and a disk too full for the next save is one clean
`OSError` (ENOSPC, `disk_full`) before h5py starts writing: h5py on a full disk
crashes the process instead of raising. So a kill or a full disk leaves the
last good backup, and the same command resumes from it.

    BestCheckpoint   model.keras, the best epoch's model
    AtomicBackup     RUN/backup/ (Keras's `BackupAndRestore`)
    HistoryCSV       history.csv, one row per epoch (in place of Keras's `CSVLogger`)

Training also uses Keras's own `TensorBoard`, `TerminateOnNaN`,
`EarlyStopping`, `SwapEMAWeights`.
"""

import csv
import errno
import io
import json
import os
import pathlib
import shutil

import keras
import numpy as np

from locnet_tf.model import losses as losses_lib
from locnet_tf.core import cli, outputs, runs

# Room kept beside the next checkpoint for the epoch's small files (history.csv,
# curves.png, TensorBoard's events).
MARGIN = 2_000_000


def state_bytes(model):
    """Bytes of a model's weights and its optimizer's state: about what a checkpoint of it writes."""
    optimizer = getattr(model, "optimizer", None)  # none before compile
    variables = list(model.variables) + list(getattr(optimizer, "variables", None) or [])
    return sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in variables)


def _megabytes(n):
    return f"{n / 1e6:.1f}" if n < 10e6 else f"{n / 1e6:.0f}"


def disk_full(where, needed):
    """The OSError (ENOSPC) naming `where` that a full disk ends a training with: space needed and free."""
    free = shutil.disk_usage(where).free
    return OSError(
        errno.ENOSPC,
        f"the disk is full: about {_megabytes(needed)} MB needed, {_megabytes(free)} MB free "
        "(the same command resumes the run from its last backup once there is space)",
        str(where),
    )


def check_room(where, needed):
    """Raises `disk_full(where, needed)` unless `where`'s file system has `needed` bytes free."""
    if shutil.disk_usage(where).free < needed:
        raise disk_full(where, needed)


def _saved_size(path, model):
    """The size the next save of `model` to `path` takes: the last one's, or the state's estimate."""
    try:
        return os.path.getsize(path)
    except OSError:
        return int(1.1 * state_bytes(model)) + 200_000


def _full_or(error, where, needed):
    """`disk_full` when `error` came from a full disk (or the disk is full now), else None."""
    full = error.errno == errno.ENOSPC or "No space left" in str(error)
    if full or shutil.disk_usage(where).free < needed:
        return disk_full(where, needed)
    return None


class BestCheckpoint(keras.callbacks.ModelCheckpoint):
    """`ModelCheckpoint(save_best_only=True)` that saves the model itself, whole or not at all.

    Two things Keras's checkpoint does not do, and why this subclass exists:

    - A `MapSupervision` wrapper is what `fit` trains; the file gets the model
      it wraps, which is what evaluation, export and prediction load.
    - The model is saved beside model.keras, then renamed over it, so a full
      disk or a kill mid-save keeps the previous best model.

    The best score across a resume is Keras's own `initial_value_threshold`
    (`runs.best_so_far` reads it from history.csv). A disk without room for
    the save is `disk_full`, checked before every epoch's save.
    """

    def set_model(self, model):
        super().set_model(losses_lib.model_of(model))

    def _save_model(self, epoch, batch, logs):
        final = self.filepath
        where = pathlib.Path(final).parent
        needed = _saved_size(final, self.model) + MARGIN
        partial = where / (".partial-" + pathlib.Path(final).name)  # Keras wants the name to end in .keras
        self.filepath = str(partial)
        try:
            check_room(where, needed)  # every epoch: Keras decides inside whether this one is saved
            super()._save_model(epoch, batch, logs)
            if partial.exists():  # saved: an improvement
                os.replace(partial, final)
        except OSError as error:
            full = _full_or(error, where, needed)
            if full is not None:
                raise full from error
            raise OSError(error.errno, f"cannot save the model ({error.strerror or error})", final) from error
        finally:
            self.filepath = final
            partial.unlink(missing_ok=True)


class AtomicBackup(keras.callbacks.BackupAndRestore):
    """Keras's `BackupAndRestore`, each file written whole: a kill or a full disk keeps the last good backup.

    Keras 3.15's `_save_model` writes `latest.weights.h5` in place
    (`model.save_weights(..., overwrite=True)`, h5py) and then
    `training_metadata.json`: a disk that fills or a kill mid-write leaves a
    truncated weights file under the real name, which the next run cannot
    read ("bad object header version number"), so the run cannot resume.
    This subclass overrides only that method: the same two files, each
    written to a temporary name and renamed into place, after a free-space
    check (`run_dir`'s disk must hold the backup and the epoch's checkpoint).
    Keras's `double_checkpoint` (a second copy, for a first that may be torn)
    is not needed then, and not offered. Restoring stays Keras's; a backup
    that cannot be read (an older version's crash) is one line naming it
    and the way out.
    """

    def __init__(self, backup_dir, run_dir=None, **kwargs):
        if kwargs.get("double_checkpoint"):
            raise ValueError("AtomicBackup writes each file whole; double_checkpoint is not needed.")
        super().__init__(backup_dir, **kwargs)
        self.run_dir = pathlib.Path(run_dir) if run_dir is not None else pathlib.Path(backup_dir).parent

    def on_train_begin(self, logs=None):
        try:
            super().on_train_begin(logs)
        except (OSError, ValueError, KeyError) as error:
            if not any(os.path.exists(p) for p in (self._weights_path, self._training_metadata_path)):
                raise  # not about the files
            detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            model = self.run_dir / runs.MODEL
            main_backup = pathlib.Path(self.backup_dir) == self.run_dir / runs.BACKUP
            # Without its backup a run with a model counts as finished (`runs.is_finished`).
            way_out = (
                "to end the run with its best model so far"
                if main_backup and model.exists()
                else "to train those epochs again"
            )
            raise ValueError(
                f"{self._weights_path}: the run's backup cannot be read ({detail}), probably cut off by a crash "
                f"(locnet_tf 0.2 wrote it in place). Remove {self.backup_dir} {way_out}, "
                "or start afresh with --overwrite."
            ) from None

    def _save_model(self):
        os.makedirs(self.backup_dir, exist_ok=True)
        weights = pathlib.Path(self._weights_path)
        # The epoch's checkpoint (model.keras) follows this backup: room for both.
        needed = 2 * _saved_size(weights, self.model) + MARGIN
        partial = weights.with_name(".partial-" + weights.name)  # Keras wants the name to end in .weights.h5
        try:
            check_room(self.run_dir, needed)
            self.model.save_weights(filepath=str(partial), overwrite=True)
            metadata = {"epoch": self._current_epoch, "batch": self._last_batch_seen}
            # Weights first: a kill between the two renames resumes one epoch early (trains it again,
            # from the newer weights); the other order would skip an epoch.
            os.replace(partial, weights)
            outputs.atomic_write(self._training_metadata_path, json.dumps(metadata))
        except OSError as error:
            full = _full_or(error, self.run_dir, needed)
            if full is not None:
                raise full from error
            raise OSError(
                error.errno, f"cannot write the run's backup ({error.strerror or error})", str(weights)
            ) from error
        finally:
            partial.unlink(missing_ok=True)


class HistoryCSV(keras.callbacks.Callback):
    """history.csv: one row per epoch, the whole table written and renamed into place each epoch.

    In place of Keras's `CSVLogger(append=True)`, which appends to an open
    file: a kill or a full disk mid-row leaves a torn line that a resumed run
    appends after, and a table no reader takes. Here each epoch reads the
    rows so far (`runs.read_history` refuses a torn table in one line naming
    it), adds its own and writes the whole table to a temporary file renamed
    over history.csv. A history is a few hundred short rows at most, so
    rewriting it costs nothing. Columns: `epoch`, then the logs' keys sorted
    (as `CSVLogger` writes them); a key new to the table adds a column.
    """

    def __init__(self, path):
        super().__init__()
        self.path = pathlib.Path(path)

    def on_train_begin(self, logs=None):
        runs.read_history(self.path)  # a torn table is refused now, not after an epoch's work

    def on_epoch_end(self, epoch, logs=None):
        fields, rows = ["epoch"], []
        if self.path.exists():
            with open(self.path, newline="") as f:
                reader = csv.DictReader(f)
                fields, rows = list(reader.fieldnames or fields), list(reader)
        row = {"epoch": epoch, **{key: _cell(value) for key, value in (logs or {}).items()}}
        fields += sorted(key for key in row if key not in fields)
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=fields, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows([*rows, row])
        try:
            outputs.atomic_write(self.path, text.getvalue())
        except OSError as error:
            full = _full_or(error, self.path.parent, len(text.getvalue()) + MARGIN)
            if full is not None:
                raise full from error
            raise


def _cell(value):
    """A log value as history.csv writes it: a number's shortest exact text."""
    if isinstance(value, str):
        return value
    array = np.asarray(value)
    return str(float(array)) if array.ndim == 0 else "[" + ", ".join(map(str, array.ravel().tolist())) + "]"


class SelectionScore(keras.callbacks.Callback):
    """Adds `runs.SELECTION` to each epoch's logs, for the checkpoint and early stopping to watch.

    First in the callback list: the callbacks after it (the checkpoint,
    early stopping, history.csv) see the same logs dict with the score in it.
    Epochs without validation (no `val_loc_accuracy`) get no score.
    """

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and runs.SELECTION_PARTS[0] in logs:
            loc, iou = (logs.get(name) for name in runs.SELECTION_PARTS)
            logs[runs.SELECTION] = runs.selection_score(float(loc), None if iou is None else float(iou))


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
        from locnet_tf.core import figures as plots

        history = runs.read_history(self.history_path)
        if history:
            try:
                plots.training_curves(history, self.out_path)  # written whole (plots._save)
            except OSError as error:
                full = _full_or(error, pathlib.Path(self.out_path).parent, MARGIN)
                if full is not None:
                    raise full from error
                raise


class StopOnCtrlC(keras.callbacks.Callback):
    """Ends `fit` with KeyboardInterrupt at the next step once Ctrl-C has come (`cli.interrupt_count`).

    Python raises KeyboardInterrupt where the main thread happens to be; inside
    TensorFlow's C++ calls back into Python it can come out as another
    exception that a library catches, and the training would go on. The
    signal handler noted it: checked after every step, the run stops there
    (the backup keeps its last epoch, and the same command resumes).
    """

    def __init__(self):
        super().__init__()
        self._before = cli.interrupt_count()  # only a Ctrl-C during this training counts

    def _check(self, *args, **kwargs):
        if cli.interrupt_count() > self._before:
            raise KeyboardInterrupt

    on_train_batch_end = on_test_batch_end = on_epoch_end = _check
