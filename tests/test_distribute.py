"""The multi-worker work-around is tied to the Keras it was written for.

These tests fail on a Keras upgrade on purpose: check whether Keras still needs
`distribute.patch_multi_worker` (run `tests/test_train.py -k multi_worker`, which
trains with two worker processes), then update `KERAS_CHECKED` or remove it.
"""

import inspect

import keras
import pytest
import tensorflow as tf

from locnet_tf.train import distribute


def test_written_for_the_installed_keras():
    assert distribute.keras_version() == distribute.KERAS_CHECKED, (
        f"Keras {keras.__version__} is installed; distribute.patch_multi_worker was written for "
        f"{distribute.KERAS_CHECKED}: re-check it (see this module's docstring)."
    )


def test_the_private_keras_functions_it_replaces_are_there():
    trainer_module = distribute._keras_trainer_module()
    assert list(inspect.signature(trainer_module.reduce_per_replica).parameters) == ["values", "strategy", "reduction"]
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    assert list(inspect.signature(model._maybe_symbolic_build).parameters) == ["iterator", "data_batch"]


def test_other_strategies_are_left_alone():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    build = model._maybe_symbolic_build
    distribute.patch_multi_worker(model, tf.distribute.get_strategy())
    assert model._maybe_symbolic_build == build


def test_make_strategy_names():
    assert distribute.make_strategy("default") is tf.distribute.get_strategy()
    with pytest.raises(ValueError, match="Unknown strategy"):
        distribute.make_strategy("tpu")
