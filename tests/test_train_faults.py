"""Faults during training (issue 27, cases 6 and 8): a run that survives them resumes.

- a disk that fills mid-run: one `error:` line (space needed, where), and the
  same command resumes once there is space;
- `kill -9` mid-run: no truncated file under a real name, and it resumes;
- two trainings into one run folder: the second is refused in one line;
- a backup an older version left unreadable: one line naming it.

The full-disk case mounts a small tmpfs (`bad_input_data.special_folder`) and
is skipped where that cannot be done.
"""

import contextlib
import csv
import errno
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import h5py
import keras
import numpy as np
import pytest

import bad_input_data as bad
from locnet_tf.train import callbacks
from locnet_tf.core import outputs, runs
from locnet_tf.data import pipeline

REPO = pathlib.Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}


def _train_command(data_dir, out, *extra):
    """The smoke preset on synthetic/tiny, as a user runs it (no test split report: quicker)."""
    argv = ["--preset", "smoke", "--data-dir", data_dir, "--out", out, "--quiet", "--no-evaluate", *extra]
    return [sys.executable, "-m", "locnet_tf.train", *map(str, argv)]


def _start(command):
    return subprocess.Popen(command, cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _run(command, timeout=900):
    return subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=timeout)


def _wait_for(condition, proc, timeout=600, poll=0.05):  # generous: a loaded machine is slow
    deadline = time.time() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"training ended (status {proc.returncode}) before the test could act:\n{proc.stderr.read()}")
        if time.time() > deadline:
            proc.kill()
            pytest.fail("training did not get there in time")
        time.sleep(poll)


def _epochs_written(run_dir):
    history = run_dir / runs.HISTORY
    return max(0, len(history.read_text().splitlines()) - 1) if history.exists() else 0


def _holder(run_dir):
    try:
        return (run_dir / runs.LOCK).read_text()
    except FileNotFoundError:
        return ""


def _one_line(stderr):
    lines = bad.error_lines(stderr)
    assert len(lines) == 1 and "Traceback" not in stderr, stderr[-3000:]
    return lines[0]


def _assert_whole(run_dir):
    """Every file under a real name reads back: no truncated weights, history or config."""
    if (run_dir / runs.MODEL).exists():
        keras.models.load_model(run_dir / runs.MODEL, compile=False)
    for weights in run_dir.glob(f"{runs.BACKUP}/**/latest.weights.h5"):
        with h5py.File(weights, "r") as f:
            assert len(f.keys()) > 0, weights
    for metadata in run_dir.glob(f"{runs.BACKUP}/**/training_metadata.json"):
        assert "epoch" in json.loads(metadata.read_text()), metadata
    json.loads((run_dir / runs.CONFIG).read_text())
    runs.read_history(run_dir / runs.HISTORY)


def _assert_resumed_and_finished(run_dir, epochs):
    history = runs.read_history(run_dir / runs.HISTORY)
    assert history["epoch"] == [float(e) for e in range(epochs)]
    assert all(np.isfinite(history["loss"]))
    assert runs.is_finished(run_dir) and not (run_dir / runs.LOCK).exists()
    assert not [p.name for p in run_dir.rglob("*partial*")], "unfinished files left behind"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A TFDS folder holding synthetic/tiny (generated once, before any training process reads it)."""
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    pipeline.examples("synthetic/tiny", "train", data_dir=data_dir)
    return data_dir


# ----------------------------------------------------------------------------
# A full disk


@pytest.mark.slow
def test_a_disk_that_fills_mid_run_ends_in_one_line_and_the_same_command_resumes(tmp_path, tiny):
    # 24 MB: the up-front check (three checkpoints and 16 MB) passes, then the disk fills.
    with bad.special_folder("full", tmp_path, size="24m") as disk:
        if disk is None:
            pytest.skip("no small file system can be mounted here (tmpfs needs root)")
        run_dir = disk / "run"
        command = _train_command(tiny, run_dir, "--epochs", "4")
        proc = _start(command)
        _wait_for(lambda: _epochs_written(run_dir) >= 1, proc)
        filler = disk / "filler"
        with open(filler, "wb") as f, contextlib.suppress(OSError):
            while True:  # every byte there is
                f.write(b"\0" * 65536)
                f.flush()
        os.truncate(filler, filler.stat().st_size - 100_000)  # room for a small file, not a checkpoint
        _, stderr = proc.communicate(timeout=600)
        line = _one_line(stderr)
        assert proc.returncode == 1
        assert line.startswith(f"error: {run_dir}: the disk is full: about "), line
        assert "MB needed" in line and "MB free" in line, line
        _assert_whole(run_dir)
        assert (run_dir / runs.BACKUP / "latest.weights.h5").exists(), "the last good backup is kept"

        filler.unlink()  # space is back: the same command resumes
        done = _run(command)
        assert done.returncode == 0, done.stderr[-3000:]
        _assert_resumed_and_finished(run_dir, 4)


def test_a_checkpoint_without_room_is_refused_before_h5py_writes(tmp_path, monkeypatch):
    """h5py on a full disk crashes the process: the room is checked first, and the backup kept."""
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(64)])
    model.compile(optimizer="adam", loss="mse")
    backup = callbacks.AtomicBackup(str(tmp_path / runs.BACKUP))
    backup.set_model(model)
    backup.on_epoch_end(0)
    weights = tmp_path / runs.BACKUP / "latest.weights.h5"
    before = weights.read_bytes()
    Usage = type(shutil.disk_usage(tmp_path))
    monkeypatch.setattr(callbacks.shutil, "disk_usage", lambda path: Usage(10**9, 10**9 - 1000, 1000))
    model.layers[0].kernel.assign(np.ones((4, 64), "float32"))
    with pytest.raises(OSError) as raised:
        backup.on_epoch_end(1)
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(tmp_path)
    assert raised.value.strerror.startswith("the disk is full: about 2.") and "0.0 MB free" in raised.value.strerror
    assert weights.read_bytes() == before and json.loads((weights.parent / "training_metadata.json").read_text()) == {
        "epoch": 1,
        "batch": 0,
    }
    assert not list(weights.parent.glob(".partial-*"))


def test_a_write_that_fails_midway_keeps_the_previous_backup(tmp_path, monkeypatch):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(optimizer="adam", loss="mse")
    backup = callbacks.AtomicBackup(str(tmp_path / runs.BACKUP))
    backup.set_model(model)
    backup.on_epoch_end(0)
    weights = tmp_path / runs.BACKUP / "latest.weights.h5"
    before = weights.read_bytes()

    def torn(filepath, overwrite=True):  # half a file, then the disk refuses
        pathlib.Path(filepath).write_bytes(before[: len(before) // 2])
        raise OSError(errno.ENOSPC, "No space left on device", filepath)

    monkeypatch.setattr(model, "save_weights", torn)
    with pytest.raises(OSError, match="the disk is full"):
        backup.on_epoch_end(1)
    assert weights.read_bytes() == before and not list(weights.parent.glob(".partial-*"))
    assert json.loads((weights.parent / "training_metadata.json").read_text())["epoch"] == 1


# ----------------------------------------------------------------------------
# history.csv


def test_history_is_written_whole_each_epoch_and_a_torn_one_is_named(tmp_path):
    path = tmp_path / runs.HISTORY
    history = callbacks.HistoryCSV(path)
    history.on_train_begin()
    history.on_epoch_end(0, {"loss": np.float32(0.5), "val_loss": 0.25})
    history.on_epoch_end(1, {"loss": 0.4, "val_loss": 0.2, "image_size": 64})  # a new key: a new column
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows == [
        {"epoch": "0", "loss": "0.5", "val_loss": "0.25", "image_size": ""},
        {"epoch": "1", "loss": "0.4", "val_loss": "0.2", "image_size": "64.0"},
    ]
    assert runs.read_history(path)["loss"] == [0.5, 0.4]
    assert sorted(p.name for p in tmp_path.iterdir()) == [runs.HISTORY]

    # Two trainings appending at once (before the lock): a second header among the rows.
    path.write_text("epoch,loss\n0,0.5\nepoch,loss\n1,0.4\n")
    with pytest.raises(ValueError, match=rf"{path}: line 3 is not an epoch's row .*--overwrite"):
        runs.read_history(path)
    with pytest.raises(ValueError, match="line 3"):
        callbacks.HistoryCSV(path).on_train_begin()  # refused before an epoch's work


# ----------------------------------------------------------------------------
# kill -9


@pytest.mark.slow
def test_kill_9_mid_write_leaves_whole_files_and_the_run_resumes(tmp_path, tiny):
    run_dir = tmp_path / "run"
    command = _train_command(tiny, run_dir, "--epochs", "3")
    proc = _start(command)
    # Killed while a checkpoint or the backup is being written, when one can be caught at it.
    _wait_for(lambda: _epochs_written(run_dir) >= 1, proc)
    _wait_for(lambda: any(run_dir.rglob(".partial-*")) or _epochs_written(run_dir) >= 2, proc, poll=0.001)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    _assert_whole(run_dir)
    done = _run(command)
    assert done.returncode == 0, done.stderr[-3000:]
    _assert_resumed_and_finished(run_dir, 3)


# ----------------------------------------------------------------------------
# Two trainings into one folder


def test_a_held_run_folder_is_refused_before_the_data_are_read(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from locnet_tf.core import runs\nwith runs.locked({str(run_dir)!r}):\n  input()"],
        cwd=REPO,
        env=ENV,
        stdin=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + 30
        while not _holder(run_dir):
            assert time.time() < deadline and holder.poll() is None
            time.sleep(0.02)
        # Data that do not exist: the lock is what the command says, before it looks for them.
        code, _, stderr = bad.run_subprocess("T", bad.train_argv(tmp_path / "no-such-data", run_dir))
        line = _one_line(stderr)
        assert code == 1
        assert line == (
            f"error: {run_dir}: another training is writing this run folder (pid {holder.pid} on "
            f"{os.uname().nodename}); wait for it to end, or give this one another --out"
        )
        with pytest.raises(OSError, match="another training"), runs.locked(run_dir):
            pass
    finally:
        holder.communicate("\n", timeout=30)
    assert not (run_dir / runs.LOCK).exists(), "the holder removes its lock file"
    with runs.locked(run_dir), runs.locked(run_dir):  # free again, and re-entrant within a process
        assert (run_dir / runs.LOCK).read_text().startswith(f"pid {os.getpid()} ")
    assert sorted(os.listdir(run_dir)) == []


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from locnet_tf.core import runs\nwith runs.locked({str(tmp_path)!r}):\n  input()"],
        cwd=REPO,
        env=ENV,
        stdin=subprocess.PIPE,
    )
    deadline = time.time() + 30
    while not _holder(tmp_path):
        assert time.time() < deadline and holder.poll() is None
        time.sleep(0.02)
    holder.kill()
    holder.wait()
    assert (tmp_path / runs.LOCK).exists(), "a kill -9 leaves the file..."
    with runs.locked(tmp_path):  # ...but not the lock
        pass


@pytest.mark.slow
def test_a_second_training_into_the_same_folder_is_refused_while_the_first_runs(tmp_path, tiny):
    run_dir = tmp_path / "run"
    first = _start(_train_command(tiny, run_dir, "--epochs", "30"))
    try:
        # Holding the lock: from before it reads the data to the end of the run.
        _wait_for(lambda: _holder(run_dir).startswith(f"pid {first.pid} "), first)
        _wait_for(lambda: (run_dir / runs.CONFIG).exists(), first)
        before = (run_dir / runs.CONFIG).read_bytes()
        # Another config, and data that do not exist: the lock is what it says, before it looks for them.
        second = _run(_train_command(tiny, run_dir, "--epochs", "4", "--data", tmp_path / "no-such-data"))
        assert second.returncode == 1
        assert _one_line(second.stderr) == (
            f"error: {run_dir}: another training is writing this run folder (pid {first.pid} on "
            f"{os.uname().nodename}); wait for it to end, or give this one another --out"
        )
        assert first.poll() is None and (run_dir / runs.CONFIG).read_bytes() == before
    finally:
        first.kill()
        first.communicate()


# ----------------------------------------------------------------------------
# An unreadable backup (an older version's crash)


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_an_unreadable_backup_is_one_line_naming_it(tmp_path, tiny, damage, capfd):
    run_dir = tmp_path / "run"
    backup = run_dir / runs.BACKUP
    backup.mkdir(parents=True)
    outputs.mark_folder(run_dir, "train")  # the run an earlier training left
    weights = backup / "latest.weights.h5"
    if damage == "truncated":  # what the disk filling under h5py left
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(256)])
        model.save_weights(weights)
        weights.write_bytes(weights.read_bytes()[:2048])
    else:  # beside a best model: without the backup, the run ends with it
        weights.write_bytes(b"\0" * 4096)
        (run_dir / runs.MODEL).write_bytes(b"a model")
    (backup / "training_metadata.json").write_text('{"epoch": 1, "batch": 0}')
    code = bad.run_command("T", _train_command(tiny, run_dir)[3:])
    _, stderr = capfd.readouterr()
    line = _one_line(stderr)
    assert code == 1
    assert line.startswith(f"error: {weights}: the run's backup cannot be read ("), line
    way_out = "to end the run with its best model so far" if damage == "garbage" else "to train those epochs again"
    assert line.endswith(f"Remove {backup} {way_out}, or start afresh with --overwrite."), line
