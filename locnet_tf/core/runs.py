"""Run folders: what `python -m locnet_tf.train --out RUN` writes, and reading it back.

    RUN/config.json    the resolved `Config` (the same command resumes the run)
    RUN/model.keras    the best model, presence threshold calibrated
    RUN/history.csv    one row per epoch
    RUN/backup/        `BackupAndRestore` state while the run is unfinished
    RUN/.train.lock    held (`fcntl.flock`) while a training writes RUN (`locked`)

Evaluation, export and inference find a model's training config here
(`config_beside`), so they read the data the way training did. Standard
library only: the device runtime (no TensorFlow) imports it too.
"""

import contextlib
import csv
import errno
import math
import os
import pathlib
import shutil
import socket

CONFIG = "config.json"
MODEL = "model.keras"
HISTORY = "history.csv"
BACKUP = "backup"
REPORT = "report.json"
LOCK = ".train.lock"
# What the run's writers name their unfinished files (`callbacks`, `outputs.atomic_path`).
PARTIAL_PATTERNS = (".partial-*", ".*.partial-*")

# Which epoch's model becomes model.keras (and what early stopping watches):
# validation localization accuracy plus a tenth of the validation mean IoU.
# Localization accuracy alone saturates: on caltech101_loc it was 1.0 from the
# first epoch, so the first epoch's model (validation IoU 0.80) was kept while
# later epochs reached 0.92. With the IoU term, ties and near-ties go to the
# better boxes; one validation image more localized still outweighs an IoU
# gain of 0.05 on a split of up to 200 images (0.1 x 0.05 = 0.005 = 1/200).
SELECTION = "val_score"
SELECTION_PARTS = ("val_loc_accuracy", "val_mean_iou")
SELECTION_IOU_WEIGHT = 0.1


def selection_score(loc_accuracy, mean_iou):
    """The `SELECTION` score of an epoch (`mean_iou` None or NaN: localization accuracy alone)."""
    if mean_iou is None or math.isnan(mean_iou):
        return float(loc_accuracy)
    return float(loc_accuracy) + SELECTION_IOU_WEIGHT * float(mean_iou)


def config_path(model_path):
    """The `config.json` of the run folder `model_path` lies in, or None when there is none."""
    if not model_path:
        return None
    candidate = pathlib.Path(model_path).parent / CONFIG
    return candidate if candidate.is_file() else None


def config_beside(model_path):
    """The training `Config` saved beside a model (its run folder's config.json), or None."""
    path = config_path(model_path)
    if path is None:
        return None
    from locnet_tf.core.config import Config

    return Config.load(path)


def read_history(path):
    """history.csv as a dict of column -> list, one entry per epoch (last row wins).

    A resumed run may write an epoch twice; the later row is the one that counts.

    Raises:
        ValueError: a row that is not an epoch's (two writers' tables
            interleaved, or a row cut off by an older version), naming the
            file and the line.
    """
    if not os.path.exists(path):
        return {}
    rows = {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        for row in reader:
            try:
                rows[int(row["epoch"])] = {key: _number(value) for key, value in row.items()}
            except (TypeError, ValueError, KeyError):
                raise ValueError(
                    f"{path}: line {reader.line_num} is not an epoch's row ({','.join(map(str, row.values()))!r}): "
                    "the history was cut off or written by two trainings at once. Start afresh with --overwrite, "
                    "or remove that line to keep the run."
                ) from None
    columns = {}
    for epoch in sorted(rows):
        for key, value in rows[epoch].items():
            columns.setdefault(key, []).append(value)
    return columns


def _number(value):
    if isinstance(value, list):  # more cells than the header names
        raise ValueError(value)
    return float(value) if value not in ("", None, "NA") else math.nan  # Keras's CSVLogger writes NA for none


def best_so_far(run_dir, monitor, mode="max", first_epoch=0):
    """The best `monitor` value the saved model.keras of `run_dir` was kept for, or None.

    Read from history.csv when a run resumes, and handed to the checkpoint as its
    starting point (`ModelCheckpoint(initial_value_threshold=...)`): without it the
    first epoch after a restart would overwrite a better model. Epochs before
    `first_epoch` (progressive resizing's small inputs) were never saved and do
    not count.
    """
    run_dir = pathlib.Path(run_dir)
    history = read_history(run_dir / HISTORY)
    if not (run_dir / MODEL).exists():
        return None
    if monitor == SELECTION:
        return _best_score_so_far(history, first_epoch)
    if monitor not in history:
        return None
    values = [v for e, v in zip(history["epoch"], history[monitor]) if e >= first_epoch and not math.isnan(v)]
    if not values:
        return None
    return max(values) if mode == "max" else min(values)


def _best_score_so_far(history, first_epoch):
    """`best_so_far` for `SELECTION`, also for a history begun before the score existed (0.2.x).

    Epochs without a score were kept by their localization accuracy alone: the
    saved model is then the first epoch with the best accuracy among them, and
    its score (not the best score of those epochs) is what a later epoch must
    beat; scored epochs after them count as they are.
    """
    epochs = history.get("epoch", [])
    nan = [math.nan] * len(epochs)
    scores, locs, ious = (history.get(name, nan) for name in (SELECTION, *SELECTION_PARTS))
    scored = [s for e, s in zip(epochs, scores) if e >= first_epoch and not math.isnan(s)]
    unscored = [
        (loc, iou)
        for e, s, loc, iou in zip(epochs, scores, locs, ious)
        if e >= first_epoch and math.isnan(s) and not math.isnan(loc)
    ]
    if unscored:
        best_loc = max(loc for loc, _ in unscored)
        kept = next((loc, iou) for loc, iou in unscored if loc == best_loc)  # Keras keeps the first of equals
        scored.append(selection_score(*kept))
    return max(scored) if scored else None


def is_finished(run_dir):
    """Whether `run_dir` holds a finished run: a model and history, and no backup.

    `BackupAndRestore` removes its state only when `fit` ends normally.
    """
    run_dir = pathlib.Path(run_dir)
    return (run_dir / MODEL).exists() and (run_dir / HISTORY).exists() and not (run_dir / BACKUP).exists()


def check_run_folder(run_dir, config, overwrite):
    """Refuses a run folder that holds a run with another config; with `overwrite`, clears it.

    A run that failed before its first epoch (bad --data, say) left only its
    config; the next attempt, with other flags, takes the folder over.
    """
    from locnet_tf.core.config import Config

    run_dir = pathlib.Path(run_dir)
    saved = run_dir / CONFIG
    started = any((run_dir / name).exists() for name in (HISTORY, MODEL, BACKUP))
    if saved.exists() and started and not overwrite:
        previous = Config.load(saved)
        if previous != config:
            changed = sorted(k for k, v in previous.to_dict().items() if v != getattr(config, k))
            raise ValueError(
                f"{run_dir} holds a run with a different config (differs in: {', '.join(changed)}). "
                "Use another --out, or --overwrite to start afresh there."
            )
    if overwrite:
        for name in (HISTORY, MODEL, REPORT):
            (run_dir / name).unlink(missing_ok=True)
        shutil.rmtree(run_dir / BACKUP, ignore_errors=True)


def remove_partials(run_dir):
    """Removes the unfinished files a killed training left in `run_dir` and its backup (never a finished one).

    Every file of a run is written under a temporary name and renamed into
    place when whole; a kill or a crash mid-write leaves that temporary file
    behind. Called with the run's lock held, so no other training is writing
    them.
    """
    run_dir = pathlib.Path(run_dir)
    for folder in (run_dir, run_dir / BACKUP, *(run_dir / BACKUP).glob("*/")):
        for pattern in PARTIAL_PATTERNS:
            for path in folder.glob(pattern):
                if path.is_file():
                    path.unlink(missing_ok=True)


# The run folders this process holds the lock of: realpath -> [descriptor, depth].
_HELD = {}


@contextlib.contextmanager
def locked(run_dir, existing_only=False):
    """Holds `run_dir`'s lock (an exclusive `flock` on RUN/.train.lock) while the block runs.

    One training at a time writes a run folder: two would interleave their
    history and overwrite each other's backup. The kernel releases a `flock`
    when its process ends, however it ends, so a killed training leaves no
    stale lock. The lock file names its holder (pid and host) for the other
    training's message, and is removed when the block ends. Re-entrant
    within a process (`locnet_tf.train`'s `main` takes it before the recipe reads the data,
    `train.train` again for its own callers). `existing_only`: a folder that
    does not exist yet is not created (and not locked).

    Raises:
        OSError (EBUSY): another process holds the lock, naming `run_dir`
            and the holder.
    """
    try:
        import fcntl
    except ImportError:  # not a POSIX system: no lock
        yield
        return
    run_dir = pathlib.Path(run_dir)
    key = os.path.realpath(run_dir)
    if key in _HELD or (existing_only and not run_dir.is_dir()):
        if key in _HELD:
            _HELD[key][1] += 1
        try:
            yield
        finally:
            if key in _HELD:
                _HELD[key][1] -= 1
        return
    path = run_dir / LOCK
    while True:
        handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(handle, 200).decode("utf-8", "replace").strip() or "pid unknown"
            os.close(handle)
            raise OSError(
                errno.EBUSY,
                f"another training is writing this run folder ({holder}); wait for it to end, "
                "or give this one another --out",
                str(run_dir),
            ) from None
        # The holder before may have removed the file between our open and our lock: lock the one there now.
        try:
            current = os.stat(path).st_ino == os.fstat(handle).st_ino
        except FileNotFoundError:
            current = False
        if current:
            break
        os.close(handle)
    os.ftruncate(handle, 0)
    os.write(handle, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
    _HELD[key] = [handle, 1]
    try:
        yield
    finally:
        _HELD.pop(key)
        # Removed while still locked: a process waiting on this file finds it gone and retries.
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        os.close(handle)
