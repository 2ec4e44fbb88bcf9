"""Transfer learning: `train --init`, the architecture read off a model, the shipped learned start."""

import json
import pathlib

import keras
import numpy as np
import pytest

from locnet_tf.core import config as config_lib
from locnet_tf.model import network as model_lib
from locnet_tf.train import run as train_lib
from locnet_tf.train import __main__ as train_main
from locnet_tf.train import transfer

SMALL = dict(filters=(8, 8, 16, 16), depths=(1, 1, 1), head_channels=8, head_units=16)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(image_size=64, filters=(8, 16, 16, 32), depths=(1, 2, 3), head_channels=16, head_units=32, dropout=0.1),
        dict(image_size=48, filters=(4, 8, 8, 8), depths=(2, 1, 1), head="dense", head_channels=4, head_units=8),
        dict(image_size=32, backbone="mobilenet_v3_small", head_channels=8, head_units=8),
    ],
)
def test_architecture_is_read_back_from_the_layers(kwargs):
    model = model_lib.build_model(num_classes=2, **kwargs)
    arch = transfer.architecture(model)
    rebuilt = model_lib.build_model(num_classes=2, **{k: v for k, v in arch.items() if v is not None})
    assert [(w.path, tuple(w.shape)) for w in rebuilt.weights] == [(w.path, tuple(w.shape)) for w in model.weights]
    for key, value in kwargs.items():
        assert arch[key] == value, key


def test_init_carries_backbone_and_box_head_and_renews_the_class_head():
    source = model_lib.build_model(class_names=["a", "b", "c"], image_size=64, **SMALL)
    # Another input size and other classes: every weight but the class layer's fits.
    target = model_lib.build_model(class_names=["cat", "dog"], image_size=96, **SMALL)
    fresh = target.get_layer("classes").get_weights()
    summary = transfer.init_weights(target, source)
    assert summary["new"] == ["classes"] and summary["new_classes"]
    for name in summary["carried"]:
        for got, want in zip(target.get_layer(name).get_weights(), source.get_layer(name).get_weights()):
            np.testing.assert_array_equal(got, want)
    assert {"simple_stem_conv", "where_logits", "where_sizes", "p_c", "class_dense"} <= set(summary["carried"])
    for got, want in zip(target.get_layer("classes").get_weights(), fresh):
        np.testing.assert_array_equal(got, want)
    line = transfer.describe(summary, "old.keras", ["a", "b", "c"], ["cat", "dog"])
    assert "new class head for 2 classes (it had 3: a, b, c)" in line

    # Three other classes, so the same shapes: the class layer must still start afresh.
    other = model_lib.build_model(class_names=["x", "y", "z"], image_size=64, **SMALL)
    assert transfer.init_weights(other, source)["new"] == ["classes"]
    # The same classes: everything carries over, and the model answers the same.
    same = model_lib.build_model(class_names=["a", "b", "c"], image_size=64, **SMALL)
    assert transfer.init_weights(same, source)["new"] == []
    x = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    np.testing.assert_allclose(same(x, training=False), source(x, training=False), atol=1e-6)


def test_init_refuses_another_backbone():
    source = model_lib.build_model(image_size=64, **SMALL)
    target = model_lib.build_model(image_size=64, **{**SMALL, "filters": (8, 16, 16, 16)})
    with pytest.raises(ValueError, match="backbone does not fit"):
        transfer.init_weights(target, source)


@pytest.mark.slow
def test_train_init_takes_the_architecture_of_the_model_it_starts_from(tmp_path, capsys):
    data_dir = str(tmp_path / "tfds")
    first = tmp_path / "first"
    train_lib.train(config_lib.preset("smoke", data_dir=data_dir, evaluate=False), out=str(first), verbose=0)
    parser = train_main.build_parser()
    # Other classes (cars ignored) and another input size; no architecture flags.
    common = ["--preset", "smoke", "--init", str(first), "--class-map", "car=", "--image-size", "48"]
    common += ["--data-dir", data_dir, "--no-evaluate", "--out", str(tmp_path / "second")]
    args = parser.parse_args(common + ["--filters", "8,16,16,16"])
    # --filters given: the user's flag wins, and train refuses the mismatch in one line.
    config = train_main.config_from_args(args)
    assert config.filters == (8, 16, 16, 16)
    with pytest.raises(
        ValueError, match=r"another architecture: filters \(8, 16, 16, 32\) \(config: \(8, 16, 16, 16\)\)"
    ):
        train_lib.train(config, out=str(tmp_path / "second"), verbose=0)
    args = parser.parse_args(common)
    config = train_main.config_from_args(args)
    smoke = config_lib.preset("smoke")
    assert (config.filters, config.head_channels, config.image_size) == (smoke.filters, smoke.head_channels, 48)
    assert "Fine-tuning" in capsys.readouterr().out
    result = train_lib.train(config, out=str(tmp_path / "second"), verbose=1)
    assert "2 classes (it had 3: pedestrian, car, motorcycle)" in capsys.readouterr().out
    saved = json.loads((tmp_path / "second" / "config.json").read_text())
    assert saved["init"] == str(first) and saved["progressive_share"] == 0.0
    model = keras.models.load_model(result["model_path"])
    assert model_lib.class_names(model) == ["pedestrian", "motorcycle"] and model.input_shape[1] == 48


def test_init_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such model file"):
        transfer.load(tmp_path / "nothing.keras")
    (tmp_path / "broken.keras").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="broken.keras: cannot be loaded"):
        transfer.load(tmp_path / "broken.keras")
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    plain.save(tmp_path / "plain.keras")
    with pytest.raises(ValueError, match="not a locnet_tf model"):
        transfer.load(tmp_path / "plain.keras")


def test_pretrained_names_the_shipped_file_or_says_how_to_build_it(monkeypatch, tmp_path):
    assert config_lib.init_path("runs/x/model.keras") == pathlib.Path("runs/x/model.keras")
    monkeypatch.setattr(config_lib, "PRETRAINED_WEIGHTS", tmp_path / "missing.keras")
    with pytest.raises(FileNotFoundError, match="python -m locnet_tf.train.pretrained"):
        transfer.model_path("pretrained")


def test_the_shipped_pretrained_weights_fit_the_photo_recipe():
    # `--init pretrained` must work on a fresh install: the file is in the
    # package (package_data), loads without TensorFlow Hub or the internet,
    # and has the photos preset's network, so the recipe can start from it.
    path = transfer.model_path("pretrained")
    assert path == config_lib.PRETRAINED_WEIGHTS and path.stat().st_size < 5e6
    arch = transfer.architecture(transfer.load(path))
    photos = config_lib.preset("photos")
    for key in ("backbone", "filters", "depths", "head", "head_channels"):
        assert arch[key] == getattr(photos, key), key
    # Another input size and classes: every layer but the class head carries over.
    target = model_lib.build_model(
        class_names=["hand", "foot"],
        **{k: v for k, v in arch.items() if v is not None and k != "image_size"},
        image_size=128,
    )
    summary = transfer.init_weights(target, transfer.load(path))
    assert summary["new"] == ["classes"]


def test_an_applications_backbone_trains_from_a_local_weights_file_offline(tmp_path, monkeypatch):
    # Offline users copy the ImageNet file once and pass its path to --weights.
    def no_internet(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr(keras.utils, "get_file", no_internet)
    donor = keras.applications.MobileNetV3Small(input_shape=(64, 64, 3), include_top=False, weights=None)
    path = tmp_path / "mobilenet_v3_small.weights.h5"
    donor.save_weights(path)
    args = [
        "--preset",
        "smoke",
        "--backbone",
        "mobilenet_v3_small",
        "--weights",
        str(path),
        "--epochs",
        "1",
        "--data-dir",
        str(tmp_path / "tfds"),
        "--no-evaluate",
        "--no-calibrate",
        "--out",
        str(tmp_path / "run"),
    ]
    config = train_main.config_from_args(train_main.build_parser().parse_args(args))
    assert config.weights == str(path)
    train_lib.train(config, out=str(tmp_path / "run"), verbose=0)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["weights"] == str(path)
    missing = train_main.build_parser().parse_args(args[:5] + [str(tmp_path / "nope.h5")] + args[6:])
    with pytest.raises(FileNotFoundError, match=r"--weights .*nope.h5: no such weights file"):
        train_main.config_from_args(missing)
