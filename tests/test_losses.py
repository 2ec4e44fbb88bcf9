import keras
import numpy as np
import pytest
import tensorflow as tf

from locnet_tf import losses as L
from locnet_tf.model import build_model

from helpers import random_predictions, random_targets

# A positive and a background sample, K = 3.
Y_POS = [1, 0.5, 0.5, 0.2, 0.3, 0, 1, 0]
P_POS = [0.9, 0.4, 0.6, 0.2, 0.1, 0.1, 0.7, 0.2]
Y_BG = [0, 0, 0, 0, 0, 0, 0, 0]
P_BG = [0.3, 0.9, 0.9, 0.9, 0.9, 0.5, 0.2, 0.3]


def test_lecture_loss_hand_computed():
    loss = L.LocalizationLoss(mode="lecture")
    # positive: differences -0.1, -0.1, 0.1, 0, -0.2, 0.1, -0.3, 0.2
    #   squares 0.01 + 0.01 + 0.01 + 0 + 0.04 + 0.01 + 0.09 + 0.04 = 0.21
    assert float(loss([Y_POS], [P_POS])) == pytest.approx(0.21, abs=1e-6)
    # background: only (0.3 - 0)^2 = 0.09, the don't-care entries are ignored
    assert float(loss([Y_BG], [P_BG])) == pytest.approx(0.09, abs=1e-6)
    # batch of both: (0.21 + 0.09) / 2 = 0.15
    assert float(loss([Y_POS, Y_BG], [P_POS, P_BG])) == pytest.approx(0.15, abs=1e-6)


def test_lecture_loss_matches_numpy_formula_on_random_batches():
    y, p = random_targets(64, 5), random_predictions(64, 5)
    per_sample = np.where(y[:, 0] == 1, ((p - y) ** 2).sum(1), (p[:, 0] - y[:, 0]) ** 2)
    loss = L.LocalizationLoss(mode="lecture")
    assert float(loss(y, p)) == pytest.approx(per_sample.mean(), rel=1e-5)


@pytest.mark.parametrize("box_loss", L.BOX_LOSSES)
def test_default_loss_all_background_is_finite_and_presence_only(box_loss):
    loss = L.LocalizationLoss(box_loss=box_loss)
    y = np.zeros((4, 8), np.float32)
    p = random_predictions(4, 3)
    value = float(loss(y, p))
    # binary cross-entropy of p_c against 0: -log(1 - p)
    expected = np.mean(-np.log(1 - p[:, 0]))
    assert np.isfinite(value)
    assert value == pytest.approx(expected, rel=1e-4)
    parts = loss.components(y, p)
    assert float(tf.reduce_sum(parts["box"])) == 0.0
    assert float(tf.reduce_sum(parts["class"])) == 0.0


@pytest.mark.parametrize("mode", L.MODES)
def test_dont_care_entries_do_not_matter(mode):
    loss = L.LocalizationLoss(mode=mode)
    y = np.array([Y_POS, Y_BG], np.float32)
    p = np.array([P_POS, P_BG], np.float32)
    p2 = p.copy()
    p2[1, 1:] = [0.1, 0.2, 0.3, 0.4, 0.8, 0.1, 0.1]  # change only the background's don't-cares
    assert float(loss(y, p)) == pytest.approx(float(loss(y, p2)), abs=1e-7)


def test_default_loss_normalised_by_positives():
    loss = L.LocalizationLoss(box_loss="l1", pc_weight=0.0, class_weight=0.0, box_weight=1.0)
    # one positive among four images: the box loss is that image's L1 error,
    # |0.4-0.5| + |0.6-0.5| + |0.2-0.2| + |0.1-0.3| = 0.1 + 0.1 + 0 + 0.2 = 0.4,
    # not 0.4 / 4.
    y = np.array([Y_POS, Y_BG, Y_BG, Y_BG], np.float32)
    p = np.array([P_POS, P_BG, P_BG, P_BG], np.float32)
    assert float(loss(y, p)) == pytest.approx(0.4, abs=1e-6)


def test_default_loss_hand_computed_terms():
    loss = L.LocalizationLoss(box_loss="mse", pc_weight=1.0, box_weight=2.0, class_weight=3.0)
    # positive only: bce(p_c)  = -log(0.9)            = 0.1053605
    #                box mse   = 0.01+0.01+0+0.04      = 0.06
    #                class ce  = -log(0.7)             = 0.3566749
    # total = 0.1053605 + 2 * 0.06 + 3 * 0.3566749     = 1.2953852
    assert float(loss([Y_POS], [P_POS])) == pytest.approx(1.2953852, rel=1e-5)


def test_giou_box_loss_is_one_minus_giou():
    loss = L.LocalizationLoss(box_loss="giou", pc_weight=0, class_weight=0, box_weight=1)
    y = [[1, 0.3, 0.3, 0.4, 0.4, 1, 0, 0]]
    p = [[1, 0.5, 0.5, 0.4, 0.4, 1, 0, 0]]
    # IoU 1/7, GIoU 1/7 - 0.08/0.36 (see test_boxes): loss = 1 - GIoU
    assert float(loss(y, p)) == pytest.approx(1 - (1 / 7 - 0.08 / 0.36), abs=1e-5)


def test_huber_giou_adds_the_two_terms():
    loss = L.LocalizationLoss(box_loss="huber_giou", pc_weight=0, class_weight=0, box_weight=1, huber_delta=0.05)
    y = [[1, 0.3, 0.3, 0.4, 0.4, 1, 0, 0]]
    p = [[1, 0.5, 0.5, 0.4, 0.4, 1, 0, 0]]
    # Huber/delta: |dx| = |dy| = 0.2 > 0.05, each 0.2 - 0.025 = 0.175; h, w exact -> 0.35
    # GIoU term (see above): 0.4 * (1 - (1/7 - 0.08/0.36))
    assert float(loss(y, p)) == pytest.approx(0.35 + 0.4 * (1 - (1 / 7 - 0.08 / 0.36)), abs=1e-5)


def test_bad_arguments():
    with pytest.raises(ValueError, match="mode"):
        L.LocalizationLoss(mode="yolo")
    with pytest.raises(ValueError, match="box_loss"):
        L.LocalizationLoss(box_loss="ciou")
    with pytest.raises(ValueError, match="component"):
        L.LossComponent("iou")


@pytest.mark.parametrize("mode, box_loss", [("default", "huber"), ("default", "giou"), ("default", "huber_giou"), ("lecture", "mse")])
def test_gradients_reach_every_trainable_variable(mode, box_loss):
    model = build_model(image_size=32, filters=(8, 8, 8, 8), head_units=16, dropout=0.0)
    loss = L.LocalizationLoss(mode=mode, box_loss=box_loss)
    x = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype(np.float32)
    y = random_targets(8, 3, positive_share=0.5)
    with tf.GradientTape() as tape:
        value = loss(y, model(x, training=True))
    grads = tape.gradient(value, model.trainable_variables)
    assert np.isfinite(float(value))
    for var, grad in zip(model.trainable_variables, grads):
        assert grad is not None, var.path
        assert np.all(np.isfinite(grad)), var.path
        assert np.any(grad != 0), f"zero gradient for {var.path}"


def test_serialization_round_trip():
    loss = L.LocalizationLoss(mode="default", box_loss="giou", box_weight=3.0)
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(again, L.LocalizationLoss) and again.get_config() == loss.get_config()
    metric = L.LossComponent("box", loss)
    again = keras.metrics.deserialize(keras.metrics.serialize(metric))
    assert again.get_config() == metric.get_config()


def test_component_metric_streams_the_term():
    loss = L.LocalizationLoss(box_loss="l1")
    metric = L.LossComponent("box", loss)
    y = np.array([Y_POS, Y_BG], np.float32)
    p = np.array([P_POS, P_BG], np.float32)
    metric.update_state(y, p)
    # mean over the batch of the per-positive-normalised term = the positive's L1, 0.4
    assert float(metric.result()) == pytest.approx(0.4, abs=1e-6)
