"""Run folders (`locnet_tf.core.runs`) and the best checkpoint across a resume."""

import keras
import numpy as np
import pytest

from locnet_tf.core import config as config_lib
from locnet_tf.core import runs
from locnet_tf.train.callbacks import BestCheckpoint


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
