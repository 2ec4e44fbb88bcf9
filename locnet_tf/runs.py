"""Run folders: what `python -m locnet_tf.train --out RUN` writes, and reading it back.

    RUN/config.json    the resolved `Config` (the same command resumes the run)
    RUN/model.keras    the best model, presence threshold calibrated
    RUN/history.csv    one row per epoch
    RUN/backup/        `BackupAndRestore` state while the run is unfinished

Evaluation, export and inference find a model's training config here
(`config_beside`), so they read the data the way training did. Standard
library only: the device runtime (no TensorFlow) imports it too.
"""

import csv
import math
import os
import pathlib
import shutil

CONFIG = "config.json"
MODEL = "model.keras"
HISTORY = "history.csv"
BACKUP = "backup"
REPORT = "report.json"


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
    from locnet_tf.config import Config

    return Config.load(path)


def read_history(path):
    """history.csv as a dict of column -> list, one entry per epoch (last row wins).

    A resumed run may write an epoch twice; the later row is the one that counts.
    """
    if not os.path.exists(path):
        return {}
    rows = {}
    with open(path) as f:
        for row in csv.DictReader(f):
            rows[int(row["epoch"])] = row
    columns = {}
    for epoch in sorted(rows):
        for key, value in rows[epoch].items():
            columns.setdefault(key, []).append(float(value) if value not in ("", None) else math.nan)
    return columns


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
    if not (run_dir / MODEL).exists() or monitor not in history:
        return None
    values = [v for e, v in zip(history["epoch"], history[monitor]) if e >= first_epoch and not math.isnan(v)]
    if not values:
        return None
    return max(values) if mode == "max" else min(values)


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
    from locnet_tf.config import Config

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
