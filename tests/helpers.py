"""Shared test helpers (keras-hub style): save/reload round trips, random targets, reference numbers.

Plain functions that tests import (`from helpers import ...`); the shared
fixtures (`smoke`, `data_dir`, `caltech_dir`) are in conftest.py.
"""

import json

import keras
import numpy as np

# The smoke model of the `smoke` fixture (conftest.py): its input size and data.
SMOKE_IMAGE_SIZE = 64
SMOKE_SPEC = "synthetic/tiny"


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


def _np_iou(a, b):
    def corners(t):
        return t[:, 0] - t[:, 3] / 2, t[:, 1] - t[:, 2] / 2, t[:, 0] + t[:, 3] / 2, t[:, 1] + t[:, 2] / 2

    ax1, ay1, ax2, ay2 = corners(a)
    bx1, by1, bx2, by2 = corners(b)
    iw = np.clip(np.minimum(ax2, bx2) - np.maximum(ax1, bx1), 0, None)
    ih = np.clip(np.minimum(ay2, by2) - np.maximum(ay1, by1), 0, None)
    inter = iw * ih
    return inter / ((ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter)


def numpy_report(y, p, threshold=0.5):
    """The report numbers computed directly, as the DESIGN defines them."""
    pos = y[:, 0] == 1
    pc_right = (p[:, 0] >= threshold) == pos
    cls_right = p[:, 5:].argmax(1) == y[:, 5:].argmax(1)
    iou = _np_iou(y[:, 1:5], p[:, 1:5])
    loc = np.where(pos, pc_right & cls_right & (iou >= 0.5), pc_right)
    return {
        "pc_accuracy": pc_right.mean(),
        "class_accuracy": cls_right[pos].mean(),
        "mean_iou": iou[pos].mean(),
        "loc_accuracy": loc.mean(),
    }
