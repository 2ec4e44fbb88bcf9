import keras
import numpy as np
import pytest
import tensorflow as tf

from locnet_tf.model import losses as L
from locnet_tf.model.network import build_model

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


@pytest.mark.parametrize(
    "mode, box_loss", [("default", "huber"), ("default", "giou"), ("default", "huber_giou"), ("lecture", "mse")]
)
def test_gradients_reach_every_trainable_variable(mode, box_loss):
    model = build_model(image_size=32, filters=(8, 8, 8, 8), depths=(1, 1, 1), head_units=16, dropout=0.0)
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


# ----------------------------------------------------------------------------
# Dense supervision of the box map.


def test_centre_heatmap_peaks_at_the_centre_cell_and_sums_to_one():
    # Centre (0.3, 0.7) on an 8x8 map: cell column 2, row 5. A box 0.5 wide
    # spreads wider along x than a 0.1-high one along y (min_sigma 0.5 cells).
    q = np.asarray(L.centre_heatmap(np.array([[0.3, 0.7, 0.1, 0.5]], np.float32), 8, 8, sigma=0.25))
    assert q.shape == (1, 8, 8)
    assert q.sum() == pytest.approx(1.0, abs=1e-5)
    assert np.unravel_index(q[0].argmax(), (8, 8)) == (5, 2)
    assert q[0, 5, 4] / q[0, 5, 2] > q[0, 7, 2] / q[0, 5, 2]  # two cells along x beat two along y
    # sigma x = 0.25 * 0.5 * 8 = 1 cell; sigma y = max(0.5, 0.25 * 0.1 * 8) = 0.5 cell.
    dx, dy = 4.5 - 0.3 * 8, 5.5 - 0.7 * 8
    assert q[0, 5, 4] / q[0, 5, 2] == pytest.approx(np.exp(-0.5 * (dx**2 - (2.5 - 2.4) ** 2)), rel=1e-4)
    assert q[0, 7, 2] / q[0, 5, 2] == pytest.approx(np.exp(-0.5 * ((7.5 - 5.6) ** 2 - dy**2) / 0.25), rel=1e-4)


def numpy_map_terms(y, logits, offsets, sizes, sigma, min_sigma=0.5):
    """map_terms with an L1 box loss, by loops over images and cells."""
    n, h, w = logits.shape[:3]
    heat, vote = np.zeros(n), np.zeros(n)
    positives = max((y[:, 0] > 0.5).sum(), 1)
    for b in range(n):
        if y[b, 0] <= 0.5:
            continue
        bx, by, bh, bw = y[b, 1:5]
        sx, sy = max(min_sigma, sigma * bw * w), max(min_sigma, sigma * bh * h)
        q = np.array(
            [
                [np.exp(-0.5 * (((j + 0.5 - bx * w) / sx) ** 2 + ((i + 0.5 - by * h) / sy) ** 2)) for j in range(w)]
                for i in range(h)
            ]
        )
        q /= q.sum()
        z = logits[b, ..., 0]
        log_p = z - np.log(np.exp(z - z.max()).sum()) - z.max()
        heat[b] = -(q * log_p).sum()
        for i in range(h):
            for j in range(w):
                v = [(j + offsets[b, i, j, 0]) / w, (i + offsets[b, i, j, 1]) / h, sizes[b, i, j, 0], sizes[b, i, j, 1]]
                vote[b] += q[i, j] * np.abs(np.array(v) - y[b, 1:5]).sum()
    return heat * n / positives, vote * n / positives


def test_map_terms_agree_with_a_numpy_recomputation():
    rng = np.random.default_rng(3)
    y = random_targets(6, 3, positive_share=0.5, seed=4)
    assert 0 < (y[:, 0] > 0.5).sum() < 6
    logits = rng.normal(size=(6, 5, 7, 1)).astype(np.float32)
    offsets = rng.uniform(0, 1, (6, 5, 7, 2)).astype(np.float32)
    sizes = rng.uniform(0, 1, (6, 5, 7, 2)).astype(np.float32)
    heat, vote = L.map_terms(L.LocalizationLoss(box_loss="l1"), y, logits, offsets, sizes, sigma=0.2)
    want_heat, want_vote = numpy_map_terms(y, logits, offsets, sizes, sigma=0.2)
    np.testing.assert_allclose(np.asarray(heat), want_heat, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.asarray(vote), want_vote, rtol=1e-4, atol=1e-6)
    assert np.all(np.asarray(heat)[y[:, 0] == 0] == 0) and np.all(np.asarray(vote)[y[:, 0] == 0] == 0)


def test_map_terms_are_least_for_a_map_that_points_at_the_object():
    # The true box sits in cell (row 1, col 2) of a 4x4 map. A map whose weights
    # and votes say so scores lower on both terms than one pointing elsewhere.
    y = np.array([[1, 0.6, 0.4, 0.2, 0.2, 1, 0, 0]], np.float32)
    offsets = np.full((1, 4, 4, 2), 0.5, np.float32)
    offsets[0, 1, 2] = [0.4, 0.6]  # (2 + 0.4) / 4 = 0.6, (1 + 0.6) / 4 = 0.4
    sizes = np.full((1, 4, 4, 2), 0.2, np.float32)
    right, wrong = np.zeros((1, 4, 4, 1), np.float32), np.zeros((1, 4, 4, 1), np.float32)
    right[0, 1, 2], wrong[0, 3, 0] = 5.0, 5.0
    loss = L.LocalizationLoss()
    heat_right, vote_right = L.map_terms(loss, y, right, offsets, sizes)
    heat_wrong, _ = L.map_terms(loss, y, wrong, offsets, sizes)
    _, vote_wrong = L.map_terms(loss, y, right, offsets, np.full_like(sizes, 0.6))
    assert float(heat_right[0]) < float(heat_wrong[0])
    assert float(vote_right[0]) < float(vote_wrong[0])


def test_map_supervision_adds_its_terms_and_trains_the_models_own_weights():
    model = build_model(image_size=32, filters=(8, 8, 8, 8), depths=(1, 1, 1), head_units=16, dropout=0.0)
    loss = L.LocalizationLoss()
    trainer = L.MapSupervision(model, loss, heatmap_weight=2.0, vote_weight=3.0)
    trainer.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
    x = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype(np.float32)
    y = random_targets(8, 3, positive_share=0.5)
    np.testing.assert_allclose(trainer.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    logs = trainer.evaluate(x, y, verbose=0, return_dict=True)
    maps = keras.Model(model.input, [model.get_layer(n).output for n in L.MAP_LAYERS])(x)
    heat, vote = L.map_terms(loss, y, *maps)
    assert logs["heatmap_loss"] == pytest.approx(float(np.mean(heat)), rel=1e-4)
    assert logs["vote_loss"] == pytest.approx(float(np.mean(vote)), rel=1e-4)
    plain = float(loss(y, model(x)))
    assert logs["loss"] == pytest.approx(plain + 2.0 * logs["heatmap_loss"] + 3.0 * logs["vote_loss"], rel=1e-4)
    before = [v.numpy().copy() for v in model.trainable_variables]
    trainer.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert any(np.any(v.numpy() != b) for v, b in zip(model.trainable_variables, before))
    with pytest.raises(ValueError, match="spatial"):
        L.MapSupervision(
            build_model(image_size=32, filters=(8, 8, 8, 8), depths=(1, 1, 1), head="dense", head_units=16), loss
        )


def test_map_supervision_scores_the_votes_the_box_layer_averages():
    # With a size_scale (progressive resizing's small model) the votes' sizes
    # are the scaled ones, as SoftArgmaxBox reads them, not the raw sigmoid map.
    model = build_model(image_size=32, filters=(8, 8, 8, 8), depths=(1, 1, 1), head_units=16, size_scale=1.5)
    trainer = L.MapSupervision(model, L.LocalizationLoss())
    x = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    _, _, _, sizes = trainer.probe(x)
    raw = keras.Model(model.input, model.get_layer("where_sizes").output)(x)
    np.testing.assert_allclose(np.asarray(sizes), 1.5 * np.asarray(raw), rtol=1e-6)
