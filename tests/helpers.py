"""Shared test helpers (keras-hub style): save/reload round trips."""

import json

import numpy as np
import keras


def assert_save_reload_same(model, x, tmp_path, atol=1e-6):
    """Saves `model` as .keras, reloads it in safe mode with no custom_objects,
    and checks it predicts the same numbers. Returns the reloaded model."""
    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    reloaded = keras.models.load_model(path, safe_mode=True)
    expected = np.asarray(model(x, training=False))
    got = np.asarray(reloaded(x, training=False))
    np.testing.assert_allclose(got, expected, atol=atol)
    # Same architecture and settings (JSON form: tuples come back as lists).
    assert json.dumps(reloaded.get_config(), sort_keys=True) == json.dumps(model.get_config(), sort_keys=True)
    return reloaded


def random_targets(n, num_classes, positive_share=0.6, seed=0):
    """Random valid targets: a share with objects, the rest background (zeros)."""
    rng = np.random.default_rng(seed)
    y = np.zeros((n, 5 + num_classes), np.float32)
    pos = rng.random(n) < positive_share
    y[pos, 0] = 1.0
    y[pos, 1:3] = rng.uniform(0.2, 0.8, (pos.sum(), 2))
    y[pos, 3:5] = rng.uniform(0.1, 0.5, (pos.sum(), 2))
    y[np.flatnonzero(pos), 5 + rng.integers(0, num_classes, pos.sum())] = 1.0
    return y


def random_predictions(n, num_classes, seed=1):
    """Random model-like outputs: p_c and box in (0, 1), classes summing to 1."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.01, 0.99, (n, 1))
    box = rng.uniform(0.05, 0.95, (n, 4))
    logits = rng.normal(size=(n, num_classes))
    cls = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    return np.concatenate([p, box, cls], axis=1).astype(np.float32)
