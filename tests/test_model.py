import keras
import numpy as np
import pytest

from locnet_tf.model import layers as layers_lib
from locnet_tf.model import network as M
from locnet_tf.model.losses import LocalizationLoss

from helpers import assert_save_reload_same, random_targets

# keras.applications backbones are tested at a small size to keep the suite fast.
SIZES = {"simple": 64, "efficientnet_lite0": 64, "mobilenet_v2": 64, "mobilenet_v3_small": 64, "efficientnet_b0": 64}


def _images(n, size, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype(np.float32)


@pytest.mark.parametrize("num_classes", [1, 3, 5])
@pytest.mark.parametrize("backbone", M.BACKBONES)
def test_shapes_ranges_and_save_reload(backbone, num_classes, tmp_path):
    size = SIZES[backbone]
    model = M.build_model(num_classes=num_classes, image_size=size, backbone=backbone)
    M.compile_model(model)
    x = _images(2, size)
    y = np.asarray(model(x, training=False))
    assert y.shape == (2, 5 + num_classes)
    assert np.all(np.isfinite(y))
    assert np.all((y[:, :5] > 0) & (y[:, :5] < 1))  # sigmoid p_c and box
    np.testing.assert_allclose(y[:, 5:].sum(-1), 1.0, atol=1e-5)  # softmax classes
    reloaded = assert_save_reload_same(model, x, tmp_path)
    assert M.class_names(reloaded) == M.class_names(model)
    assert len(M.class_names(model)) == num_classes
    assert isinstance(reloaded.loss, LocalizationLoss)


def test_default_class_names_and_threshold_survive_reload(tmp_path):
    model = M.build_model(
        class_names=["baby"], image_size=32, filters=(8, 8, 8, 8), depths=(1, 1, 1), presence_threshold=0.35
    )
    assert M.layout(model).class_names == ("baby",)
    reloaded = assert_save_reload_same(model, _images(1, 32), tmp_path)
    assert M.class_names(reloaded) == ["baby"]
    assert M.presence_threshold(reloaded) == pytest.approx(0.35)
    assert M.class_names(M.build_model(image_size=32)) == ["pedestrian", "car", "motorcycle"]


def test_pixel_scaling_is_inside_the_model():
    # The model is fed 0..255: scaling the input by 1/255 outside must change the answer.
    model = M.build_model(image_size=32, filters=(8, 8, 8, 8), depths=(1, 1, 1))
    assert model.get_layer("pixel_scaling").scale == pytest.approx(1 / 255)
    x = _images(2, 32)
    assert not np.allclose(model(x, training=False), model(x / 255.0, training=False))


def test_bad_arguments():
    with pytest.raises(ValueError, match="Unknown backbone"):
        M.build_model(backbone="resnet9000")
    with pytest.raises(ValueError, match="no pretrained weights"):
        M.build_model(weights="imagenet")
    with pytest.raises(ValueError, match="num_classes=2 but 3"):
        M.build_model(num_classes=2, class_names=["a", "b", "c"])
    with pytest.raises(ValueError, match="not a locnet_tf model"):
        M.class_names(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]))


@pytest.mark.parametrize("backbone", ["simple", "mobilenet_v3_small"])
def test_fit_reports_every_component_and_metric(backbone, tmp_path):
    size = SIZES[backbone]
    model = M.compile_model(M.build_model(image_size=size, backbone=backbone), jit_compile=False)
    x = _images(8, size)
    y = random_targets(8, 3)
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    for key in (
        "loss",
        "pc_loss",
        "box_loss",
        "class_loss",
        "pc_accuracy",
        "class_accuracy",
        "mean_iou",
        "loc_accuracy",
    ):
        assert key in history.history, key
        assert np.isfinite(history.history[key][0]), key
    # a compiled, trained model still reloads in safe mode with no custom objects
    assert_save_reload_same(model, x, tmp_path)


def test_local_weights_file_for_applications_backbone(tmp_path):
    # A user offline points `weights` at a local file instead of "imagenet".
    donor = keras.applications.MobileNetV3Small(input_shape=(64, 64, 3), include_top=False, weights=None)
    path = tmp_path / "backbone.weights.h5"
    donor.save_weights(path)
    model = M.build_model(image_size=64, backbone="mobilenet_v3_small", weights=str(path))
    inner = [layer for layer in model.layers if isinstance(layer, keras.Model)][0]
    for a, b in zip(inner.weights, donor.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_mixed_precision_keeps_heads_and_output_float32():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = M.build_model(image_size=32, filters=(8, 8, 8, 8), depths=(1, 1, 1))
        assert model.get_layer("simple_stem_conv").compute_dtype == "float16"
        y = model(_images(2, 32), training=False)
        assert y.dtype == "float32" and np.all(np.isfinite(np.asarray(y)))
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_soft_argmax_box_hand_worked():
    layer = layers_lib.SoftArgmaxBox()
    # A 2 (rows) x 3 (columns) map, so rows and columns cannot be confused.
    offsets = np.zeros((1, 2, 3, 2), np.float32)
    offsets[0, 0, 1] = [0.5, 0.25]  # (x, y) offsets voted by row 0, column 1
    sizes = np.zeros((1, 2, 3, 2), np.float32)
    sizes[0, 0, 1] = [0.2, 0.4]  # (h, w)
    features = np.arange(12, dtype=np.float32).reshape(1, 2, 3, 2)
    logits = np.zeros((1, 2, 3, 1), np.float32)
    logits[0, 0, 1] = 100.0  # one dominant cell: row 0, column 1
    box, pooled = layer([logits, offsets, sizes, features])
    # centre x = (column 1 + 0.5) / 3 columns = 0.5; centre y = (row 0 + 0.25) / 2 rows = 0.125
    np.testing.assert_allclose(np.asarray(box), [[0.5, 0.125, 0.2, 0.4]], atol=1e-5)
    np.testing.assert_allclose(np.asarray(pooled), [features[0, 0, 1]], atol=1e-4)
    # Uniform weights, zero offsets: x = mean(0, 1, 2) / 3 = 1/3, y = mean(0, 1) / 2 = 1/4;
    # sizes average over 6 cells: (0.2 / 6, 0.4 / 6).
    box, pooled = layer([np.zeros_like(logits), offsets * 0, sizes, features])
    np.testing.assert_allclose(np.asarray(box), [[1 / 3, 1 / 4, 0.2 / 6, 0.4 / 6]], atol=1e-6)
    np.testing.assert_allclose(np.asarray(pooled), [features[0].mean(axis=(0, 1))], atol=1e-5)


def _two_peaks(second=3.0):
    # An 8 x 8 map with two peaks far apart (two hands): row 1 col 1 (logit 5) and row 6 col 6
    # (`second`). Every cell votes for a 0.2 x 0.2 box at its centre; the two peaks' features
    # are one-hot, so the pooled features say whose they are.
    logits = np.full((1, 8, 8, 1), -10.0, np.float32)
    logits[0, 1, 1], logits[0, 6, 6] = 5.0, second
    offsets = np.full((1, 8, 8, 2), 0.5, np.float32)
    sizes = np.full((1, 8, 8, 2), 0.2, np.float32)
    features = np.zeros((1, 8, 8, 2), np.float32)
    features[0, 1, 1], features[0, 6, 6] = [1.0, 0.0], [0.0, 1.0]
    return [logits, offsets, sizes, features]


def test_soft_argmax_box_reads_the_stronger_of_two_objects_at_inference():
    layer = layers_lib.SoftArgmaxBox(around_peak=True)
    box, pooled = layer(_two_peaks(), training=False)
    # The stronger peak's box: centre (1 + 0.5) / 8 on both axes, and its features alone.
    np.testing.assert_allclose(np.asarray(box), [[0.1875, 0.1875, 0.2, 0.2]], atol=1e-3)
    np.testing.assert_allclose(np.asarray(pooled), [[1.0, 0.0]], atol=1e-3)
    # Over the whole map (training, and models saved before the window): a box pulled
    # towards the other object by its softmax weight, 1 / (1 + e^2), and both objects'
    # features mixed in that ratio.
    second = 1.0 / (1.0 + np.exp(2.0))
    for whole in (layer(_two_peaks(), training=True), layers_lib.SoftArgmaxBox()(_two_peaks())):
        box, pooled = (np.asarray(t) for t in whole)
        np.testing.assert_allclose(box[0, :2], 0.1875 + (0.8125 - 0.1875) * second, atol=1e-4)
        np.testing.assert_allclose(pooled[0], [1.0 - second, second], atol=1e-4)


def test_the_box_moves_smoothly_when_two_peaks_swap():
    # A rounding of the logits (a float16 or int8 model, a slightly different resize) must
    # move the box by a little, not from one object to the other. As the second peak's
    # logit passes the first's (5.0) in steps of 0.01, the box goes over from the first
    # object to the second, and no step moves it by more than 0.02; a window on the one
    # strongest cell jumps 0.625 at once.
    layer = layers_lib.SoftArgmaxBox(around_peak=True)
    centres = [
        float(np.asarray(layer(_two_peaks(second), training=False)[0])[0, 0]) for second in np.arange(3.0, 7.0, 0.01)
    ]
    assert centres[0] < 0.2 and centres[-1] > 0.8
    assert np.abs(np.diff(centres)).max() < 0.02


def test_peak_window_follows_the_peaks_box():
    # The peak at row 3 col 4 of a 10 x 10 map votes for a box 0.5 wide and 0.3 high at its
    # cell's centre (0.45, 0.35): cells whose centre (0.05, 0.15, ...) is within 0.25 + 0.1 of
    # it in x and 0.15 + 0.1 in y (half the box and one cell) are in: columns 1-7 along the
    # peak's row, rows 1-5 along its column weigh over half. The edge is soft, and the
    # weight falls with the distance from the peak to almost nothing far away.
    logits = np.zeros((1, 10, 10, 1), np.float32)
    logits[0, 3, 4] = 10.0
    offsets = np.full((1, 10, 10, 2), 0.5, np.float32)
    sizes = np.zeros((1, 10, 10, 2), np.float32)
    sizes[0, 3, 4] = [0.3, 0.5]  # (h, w)
    votes = layers_lib.box_lib.map_votes(offsets, sizes)
    window = np.asarray(layers_lib.peak_window(logits, votes))[0]
    assert np.nonzero(window[3] > 0.5)[0].tolist() == [1, 2, 3, 4, 5, 6, 7]
    assert np.nonzero(window[:, 4] > 0.5)[0].tolist() == [1, 2, 3, 4, 5]
    assert window.max() == window[3, 4] and window[9, 9] < 0.02
    assert (np.diff(window[3, 4:]) < 0).all() and (np.diff(window[3:, 4]) < 0).all()


def test_models_saved_before_the_window_keep_the_whole_map(tmp_path):
    # A .keras file from before `around_peak` has no such field: it loads without the window.
    config = layers_lib.SoftArgmaxBox(around_peak=True, name="box").get_config()
    assert config["around_peak"] is True
    del config["around_peak"]
    assert layers_lib.SoftArgmaxBox.from_config(config).around_peak is False
    # New models have it, and keep it through save and load.
    model = M.build_model(image_size=48, filters=(8, 8, 8, 8), depths=(1, 1, 1), head_units=16)
    model.save(tmp_path / "m.keras")
    assert keras.models.load_model(tmp_path / "m.keras").get_layer("box").around_peak is True


@pytest.mark.parametrize("head", ["spatial", "dense"])
def test_both_heads_build_and_reload(head, tmp_path):
    model = M.build_model(image_size=48, filters=(8, 8, 8, 8), depths=(1, 1, 1), head=head, head_units=16)
    assert_save_reload_same(model, _images(2, 48), tmp_path)
    with pytest.raises(ValueError, match="Unknown head"):
        M.build_model(image_size=48, head="yolo")


def test_deeper_simple_backbone_adds_residual_convs_and_reloads(tmp_path):
    shallow = M.build_model(image_size=48, filters=(8, 8, 8, 8), depths=(1, 1, 1), head_units=16)
    deep = M.build_model(image_size=48, filters=(8, 8, 8, 8), depths=(1, 2, 3), head_units=16)
    names = {layer.name for layer in deep.layers}
    # depths (1, 2, 3): stage 2 gains one conv, stage 3 two, each added back to its input.
    assert {"simple_s2b2_conv", "simple_s3b2_conv", "simple_s3b3_conv", "simple_s3b3_add"} <= names
    assert "simple_s1b2_conv" not in names
    # each extra 3x3 conv of 8 -> 8 channels: 3*3*8*8 weights + 4*8 batch-norm values
    assert deep.count_params() - shallow.count_params() == 3 * (3 * 3 * 8 * 8 + 4 * 8)
    # the default depths are the Config's, (1, 2, 3)
    default = M.build_model(image_size=48, filters=(8, 8, 8, 8), head_units=16)
    assert [layer.name for layer in default.layers] == [layer.name for layer in deep.layers]
    assert_save_reload_same(deep, _images(2, 48), tmp_path)
    for bad in [(1, 1), (1, 0, 1)]:
        with pytest.raises(ValueError, match="depths must be 3 integers"):
            M.build_model(image_size=48, depths=bad)


def test_size_scale_multiplies_box_sizes_only_and_adds_nothing_at_one():
    # Progressive resizing's small model: same layers and weights, box sizes
    # scaled by final size / small size, so p pixels mean the same sigmoid output.
    plain = M.build_model(image_size=48, filters=(8, 8, 8, 8), depths=(1, 1, 1), head_units=16)
    scaled = M.build_model(image_size=48, filters=(8, 8, 8, 8), depths=(1, 1, 1), head_units=16, size_scale=2.0)
    assert "where_sizes_scale" not in {layer.name for layer in plain.layers}
    for layer in scaled.layers:
        if layer.weights:
            layer.set_weights(plain.get_layer(layer.name).get_weights())
    # Over the whole map, as training reads it: at inference the window around the peak
    # follows the peak's box size, so scaled sizes widen it (by design).
    for model in (plain, scaled):
        model.get_layer("box").around_peak = False
    x = _images(3, 48)
    a, b = np.asarray(plain(x)), np.asarray(scaled(x))
    np.testing.assert_allclose(b[:, 3:5], 2.0 * a[:, 3:5], rtol=1e-5)  # b_h, b_w
    np.testing.assert_allclose(b[:, [0, 1, 2, 5, 6, 7]], a[:, [0, 1, 2, 5, 6, 7]], rtol=1e-5, atol=1e-6)


def test_build_model_defaults_are_the_default_commands_model():
    # One source of defaults: build_model() is the model `python -m locnet_tf.train` trains.
    from locnet_tf.core import config as config_lib
    from locnet_tf.train import transfer

    config = config_lib.preset("default")
    expected = {k: v for k, v in config.model_kwargs().items() if k != "weights"}
    default = M.build_model()
    assert transfer.architecture(default) == expected
    assert default.input_shape[1:] == (128, 128, 3)
    small = config_lib.preset("smoke", class_names=("cat", "dog"))
    model = M.build_model(small)
    assert model.input_shape[1:] == (small.image_size,) * 2 + (3,) and M.class_names(model) == ["cat", "dog"]
    assert M.build_model(small, image_size=32).input_shape[1] == 32, "arguments win over the config"
    with pytest.raises(TypeError, match="Config"):
        M.build_model(3)
