"""Run folders (`locnet_tf.core.runs`) and the best checkpoint across a resume."""

import keras
import numpy as np
import pytest

from locnet_tf.core import config as config_lib
from locnet_tf.core import runs
from locnet_tf.train.callbacks import BestCheckpoint, SelectionScore
from locnet_tf.train.run import BEST_METRIC


def _history(run_dir, rows):
    lines = ["epoch,val_loc_accuracy"] + [f"{e},{v}" for e, v in rows]
    (run_dir / runs.HISTORY).write_text("\n".join(lines) + "\n")


def test_best_so_far_reads_history_of_a_saved_model(tmp_path):
    # Epoch 1 was written twice (a resumed run): the later row counts.
    _history(tmp_path, [(0, 0.4), (1, 0.9), (1, 0.5), (2, 0.6), (3, "")])
    assert runs.best_so_far(tmp_path, "val_loc_accuracy") is None, "no model.keras: nothing to protect"
    (tmp_path / runs.MODEL).write_bytes(b"")
    assert runs.best_so_far(tmp_path, "val_loc_accuracy") == 0.6
    assert runs.best_so_far(tmp_path, "val_loc_accuracy", "min") == 0.4
    # Progressive resizing's small epochs were never saved.
    assert runs.best_so_far(tmp_path, "val_loc_accuracy", first_epoch=3) is None
    assert runs.read_history(tmp_path / runs.HISTORY)["epoch"] == [0.0, 1.0, 2.0, 3.0]


def test_checkpoint_keeps_a_better_model_from_before_a_resume(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    path = tmp_path / runs.MODEL
    checkpoint = BestCheckpoint(
        str(path), monitor="val_loc_accuracy", mode="max", save_best_only=True, initial_value_threshold=0.8
    )
    checkpoint.set_model(model)
    checkpoint.on_epoch_end(2, {"val_loc_accuracy": 0.7})
    assert not path.exists(), "worse than the model kept before the resume: not saved"
    checkpoint.on_epoch_end(3, {"val_loc_accuracy": 0.85})
    assert path.exists() and not list(tmp_path.glob(".partial-*"))
    reloaded = keras.models.load_model(path)
    np.testing.assert_allclose(reloaded.get_weights()[0], model.get_weights()[0])


def test_a_saturated_localization_accuracy_keeps_the_epoch_with_the_better_boxes(tmp_path):
    # caltech101_loc: validation localization accuracy 1.0 from the first epoch, IoU 0.80 -> 0.92.
    # Watching the accuracy alone kept the first epoch's model; the score keeps the last.
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    path = tmp_path / runs.MODEL
    score = SelectionScore()
    checkpoint = BestCheckpoint(str(path), monitor=BEST_METRIC, mode="max", save_best_only=True)
    checkpoint.set_model(model)
    saved = []
    epochs = [(1.0, 0.80), (1.0, 0.92), (1.0, 0.91), (0.995, 0.93), (0.995, 0.99), (0.99, 1.0)]
    for epoch, (loc, iou) in enumerate(epochs):
        model.layers[0].bias.assign([float(epoch)])
        logs = {"val_loc_accuracy": loc, "val_mean_iou": iou}
        for callback in (score, checkpoint):  # the order of train's callback list
            callback.on_epoch_end(epoch, logs)
        assert logs[BEST_METRIC] == pytest.approx(runs.selection_score(loc, iou))
        saved.append(float(keras.models.load_model(path).layers[0].bias.numpy()[0]))
    # One image in 200 fewer localized is outweighed only by an IoU gain of over 0.05 (epochs 3 and 4).
    assert saved == [0, 1, 1, 1, 4, 4]
    assert runs.selection_score(0.5, float("nan")) == runs.selection_score(0.5, None) == 0.5


def test_best_so_far_scores_a_history_written_before_the_score(tmp_path):
    # A 0.2.x run resumed: its history.csv has the two parts but no score column. Its model.keras
    # is the first epoch with the best localization accuracy (epoch 0), so that epoch's score is
    # what a later epoch must beat, not epoch 1's.
    lines = ["epoch,val_loc_accuracy,val_mean_iou", "0,1.0,0.8", "1,1.0,0.92", "2,0.9,0.95"]
    (tmp_path / runs.HISTORY).write_text("\n".join(lines) + "\n")
    (tmp_path / runs.MODEL).write_bytes(b"")
    assert runs.best_so_far(tmp_path, BEST_METRIC) == pytest.approx(1.08)
    # Resumed once: one scored epoch (1.04) added the column, and the old rows' cells are empty.
    # They still count: a second resume must not let an epoch scoring 1.05 overwrite the 1.08 model.
    lines = ["epoch,val_loc_accuracy,val_mean_iou,val_score", "0,1.0,0.8,", "1,1.0,0.92,", "2,0.95,0.9,1.04"]
    (tmp_path / runs.HISTORY).write_text("\n".join(lines) + "\n")
    assert runs.best_so_far(tmp_path, BEST_METRIC) == pytest.approx(1.08)
    lines[-1] = "2,1.0,0.99,1.099"
    (tmp_path / runs.HISTORY).write_text("\n".join(lines) + "\n")
    assert runs.best_so_far(tmp_path, BEST_METRIC) == pytest.approx(1.099)
    # Progressive resizing's small epochs (before first_epoch) were never saved.
    assert runs.best_so_far(tmp_path, BEST_METRIC, first_epoch=3) is None


def test_config_beside_a_model_and_the_run_folder_check(tmp_path):
    assert runs.config_beside(tmp_path / "model.keras") is None
    assert runs.config_beside(None) is None
    config = config_lib.preset("smoke")
    config.save(tmp_path / runs.CONFIG)
    assert runs.config_beside(tmp_path / "model.keras") == config
    assert runs.config_path(tmp_path / "model.keras") == tmp_path / runs.CONFIG
    runs.check_run_folder(tmp_path, config_lib.preset("smoke", epochs=9), overwrite=False)  # not started: taken over
    (tmp_path / runs.HISTORY).write_text("epoch\n0\n")
    with pytest.raises(ValueError, match="differs in: epochs"):
        runs.check_run_folder(tmp_path, config_lib.preset("smoke", epochs=9), overwrite=False)
    runs.check_run_folder(tmp_path, config_lib.preset("smoke", epochs=9), overwrite=True)
    assert not (tmp_path / runs.HISTORY).exists()
    assert not runs.is_finished(tmp_path)
