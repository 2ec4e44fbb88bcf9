"""A `.keras` file describes itself: build arguments and preprocessing live in the model.

The model's `TargetVector` layer records the resize, class names, presence
threshold and `build_model`'s arguments (`model.build_arguments`,
`model.preprocessing`). A model copied out of its run folder predicts,
evaluates, exports and starts a fine-tuning exactly as it does in the folder;
a model saved before it recorded them (0.2.0) falls back to the run's
config.json and to reading its architecture off its layers.
"""

import json
import shutil
import zipfile

import keras
import numpy as np
import pytest
from PIL import Image

from locnet_tf.core import config as config_lib
from locnet_tf.evaluate import run as evaluate_lib
from locnet_tf.evaluate import calibration as calibration_lib
from locnet_tf.export import run as export
from locnet_tf.evaluate import predictor as inference
from locnet_tf import predict
from locnet_tf.train import recipe, transfer
from locnet_tf.model import network as model_lib
from locnet_tf.train import run as train_lib
from locnet_tf.train import __main__ as train_main

SMALL = dict(image_size=32, filters=(4, 8, 8, 8), depths=(1, 2, 1), head_channels=4, head_units=8, dropout=0.1)


def save_as_before(model, path):
    """Saves `model` as locnet_tf 0.2.0 did: its TargetVector's config without `resize` and `build_arguments`."""
    model.save(path)
    with zipfile.ZipFile(path) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(files["config.json"])
    (layer,) = [layer for layer in config["config"]["layers"] if layer["class_name"] == "TargetVector"]
    for key in ("resize", "build_arguments"):
        del layer["config"][key]
    files["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)


def wide_image(path, seed=3):
    """A 40 x 120 picture (far from square: letterbox and stretch give other inputs) with a car-like block."""
    rng = np.random.default_rng(seed)
    image = np.linspace(40, 200, 120, dtype=np.float32)[None, :, None].repeat(40, 0).repeat(3, 2)
    image[12:30, 50:85] = (200, 30, 30)
    image = np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8)
    Image.fromarray(image).save(path)
    return path


@pytest.mark.parametrize("head", ["spatial", "dense"])
def test_the_description_survives_save_and_load_and_rebuilds_the_network(tmp_path, head):
    model = model_lib.build_model(
        class_names=["cat", "dog"], presence_threshold=0.3, resize="letterbox", head=head, **SMALL
    )
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert model_lib.preprocessing(loaded) == {
        "image_size": 32,
        "resize": "letterbox",
        "class_names": ["cat", "dog"],
        "presence_threshold": pytest.approx(0.3),
    }
    arguments = model_lib.build_arguments(loaded)
    assert arguments == model_lib.build_arguments(model)
    for key, value in SMALL.items():
        assert arguments[key] == value, key
    assert arguments["head"] == head and arguments["backbone"] == "simple" and arguments["resize"] == "letterbox"
    rebuilt = model_lib.build_model(**arguments)
    assert [(w.path, tuple(w.shape)) for w in rebuilt.weights] == [(w.path, tuple(w.shape)) for w in loaded.weights]
    assert model_lib.preprocessing(rebuilt) == model_lib.preprocessing(loaded)
    assert transfer.architecture(loaded) == transfer.architecture_from_layers(loaded) | {"dropout": 0.1}


def test_build_model_takes_the_resize_from_its_config_and_refuses_an_unknown_one():
    config = config_lib.Config(resize="letterbox", image_size=32, filters=(4, 4, 4, 4), depths=(1, 1, 1))
    assert model_lib.resize_method(model_lib.build_model(config)) == "letterbox"
    assert model_lib.resize_method(model_lib.build_model(image_size=32, depths=(1, 1, 1))) == "stretch"
    with pytest.raises(ValueError, match="resize must be one of"):
        model_lib.build_model(image_size=32, depths=(1, 1, 1), resize="crop")


def test_a_model_saved_before_it_described_itself_falls_back(tmp_path):
    model = model_lib.build_model(resize="letterbox", **SMALL)
    run = tmp_path / "run"
    run.mkdir()
    save_as_before(model, run / "model.keras")
    old = keras.models.load_model(run / "model.keras")
    assert model_lib.build_arguments(old) is None and model_lib.resize_method(old) is None
    # The architecture is read off the layers, as before.
    assert transfer.architecture(old) == {
        key: value for key, value in model_lib.build_arguments(model).items() if key in transfer.architecture(old)
    } | {"dropout": pytest.approx(0.1)}
    # Resize: the run's config.json, else stretch (what 0.2.0 did).
    assert inference.Predictor(run / "model.keras").resize == "stretch"
    config_lib.preset("smoke", resize="letterbox").save(run / "config.json")
    assert inference.Predictor(run / "model.keras").resize == "letterbox"
    # The shipped learned start was rebuilt by `python -m locnet_tf.train.pretrained` and describes itself.
    shipped = transfer.load(config_lib.PRETRAINED_WEIGHTS)
    assert model_lib.build_arguments(shipped)["backbone"] == config_lib.preset("photos").backbone
    assert transfer.architecture(shipped) == {
        key: value for key, value in model_lib.build_arguments(shipped).items() if key in transfer.architecture(shipped)
    }


def test_the_model_wins_over_a_config_json_that_disagrees_with_one_warning(tmp_path, capsys):
    model_lib.build_model(resize="letterbox", **SMALL).save(tmp_path / "model.keras")
    config_lib.preset("smoke", resize="stretch").save(tmp_path / "config.json")
    capsys.readouterr()
    assert inference.Predictor(tmp_path / "model.keras").resize == "letterbox"
    assert inference.Predictor(tmp_path / "model.keras").resize == "letterbox"
    warned = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert warned == [
        f"warning: {tmp_path / 'model.keras'} was trained with resize 'letterbox', which it records; "
        f"{tmp_path / 'config.json'} says 'stretch': the model's is used."
    ]
    # An explicit resize= still wins over both.
    assert inference.Predictor(tmp_path / "model.keras", resize="stretch").resize == "stretch"


@pytest.fixture(scope="module")
def letterbox_run(tmp_path_factory, data_dir):
    """A smoke run trained with letterbox, and its model.keras copied alone into an empty folder."""
    root = tmp_path_factory.mktemp("letterbox_run")
    parser = train_main.build_parser()
    args = parser.parse_args(["--preset", "smoke", "--resize", "letterbox", "--data-dir", data_dir, "--no-evaluate"])
    config = train_main.config_from_args(args, notice=lambda line: None)
    assert config.resize == "letterbox"
    train_lib.train(config, out=str(root / "run"), verbose=0)
    (root / "alone").mkdir()
    copied = root / "alone" / "model.keras"
    shutil.copy(root / "run" / "model.keras", copied)
    return {"root": root, "run": root / "run" / "model.keras", "copied": copied, "config": config}


def test_a_copied_model_predicts_as_in_its_run_folder(letterbox_run, tmp_path, capsys):
    image = wide_image(tmp_path / "wide.png")
    in_run = inference.Predictor(letterbox_run["run"])
    alone = inference.Predictor(letterbox_run["copied"])
    assert (in_run.resize, alone.resize) == ("letterbox", "letterbox")
    expected, got = in_run.predict(image), alone.predict(image)
    np.testing.assert_array_equal(got.box, expected.box)
    np.testing.assert_array_equal(got.box_pixels, expected.box_pixels)
    assert (got.p_c, got.class_id) == (expected.p_c, expected.class_id)
    # Not a test that cannot fail: stretched, this image gives another box.
    stretched = inference.Predictor(letterbox_run["copied"], resize="stretch").predict(image)
    assert not np.allclose(stretched.box, expected.box, atol=1e-4)
    # The command line too: the same JSON line from either place.
    capsys.readouterr()
    rows = []
    for model in (letterbox_run["run"], letterbox_run["copied"]):
        assert predict.main([str(model), str(image), "--quiet"]) == 0
        rows.append(json.loads(capsys.readouterr().out.strip().splitlines()[-1]))
    assert rows[0] == rows[1] and rows[0]["box"] == pytest.approx(list(expected.box))


@pytest.fixture(scope="module")
def wide_photos(tmp_path_factory):
    """A `csv:` source of 12 wide pictures (letterbox and stretch feed the model other pixels)."""
    root = tmp_path_factory.mktemp("wide_photos")
    rows = []
    for i in range(12):
        wide_image(root / f"wide{i:02d}.png", seed=i)
        rows.append(f"wide{i:02d}.png,{50 + i},12,85,30,car")
    (root / "labels.csv").write_text("filename,x1,y1,x2,y2,label\n" + "\n".join(rows) + "\n")
    return f"csv:{root / 'labels.csv'}"


def _figures(report):
    """A report without what names the model's place: its path, and the TFDS folder the run's
    config.json names (the in-run evaluation records it; a csv: source does not use it)."""
    figures = {k: v for k, v in report.items() if k != "model"}
    figures["evaluate_config"] = {k: v for k, v in figures["evaluate_config"].items() if k != "data_dir"}
    return figures


@pytest.mark.slow
def test_a_copied_model_evaluates_and_calibrates_as_in_its_run_folder(letterbox_run, wide_photos, tmp_path):
    # The run folder's config.json names synthetic data; both read the same wide pictures here.
    in_run = evaluate_lib.evaluate(letterbox_run["run"], data=wide_photos, split="train", pictures=False)
    alone = evaluate_lib.evaluate(letterbox_run["copied"], data=wide_photos, split="train", pictures=False)
    assert in_run["counts"]["images"] > 0
    assert _figures(alone) == _figures(in_run)
    # Not a test that cannot fail: stretched, the same pictures give other outputs.
    _, _, own = evaluate_lib.predict_split(letterbox_run["copied"], wide_photos, "train")
    stretched = inference.Predictor(letterbox_run["copied"])
    stretched.resize = "stretch"
    _, _, other = evaluate_lib.predict_split(stretched, wide_photos, "train")
    assert not np.allclose(other, own, atol=1e-4)
    # A model in memory reads its own resize too (calibration runs on one).
    _, _, in_memory = evaluate_lib.predict_split(keras.models.load_model(letterbox_run["copied"]), wide_photos, "train")
    np.testing.assert_allclose(in_memory, own, atol=1e-5)
    # Calibration keeps writing the threshold into the model, and the description stays.
    calibrated = tmp_path / "model.keras"
    shutil.copy(letterbox_run["copied"], calibrated)
    threshold = calibration_lib.calibrate(calibrated, data=wide_photos, split="train")
    model = keras.models.load_model(calibrated)
    assert model_lib.presence_threshold(model) == pytest.approx(threshold)
    assert model_lib.build_arguments(model)["presence_threshold"] == pytest.approx(threshold)
    assert model_lib.resize_method(model) == "letterbox"
    assert model_lib.build_arguments(model)["filters"] == letterbox_run["config"].filters


def _pixel_iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return ix * iy / union


@pytest.mark.slow
def test_a_box_on_another_labelled_object_is_found_on_a_letterboxed_model(letterbox_run, tmp_path):
    """Evaluation moves the other objects' boxes onto the letterboxed input, as the pipeline moves the target's.

    Each wide picture gets two objects: the whole picture, of another class than
    the model answers (the largest: the target, so loc_accuracy is 0), and the
    model's own answer, clipped to the picture (so the any-object figure counts
    it wherever its IoU with the answer stays >= 0.5). The figure must equal the
    same rule computed in the picture's pixels, from `Predictor.predict`.
    """
    predictor = inference.Predictor(letterbox_run["copied"])
    names = predictor.class_names
    root = tmp_path / "voc"
    (root / "JPEGImages").mkdir(parents=True)
    (root / "Annotations").mkdir()
    (root / "ImageSets" / "Main").mkdir(parents=True)
    stems, expected = [], []
    for i in range(8):
        stem = f"wide{i}"
        path = wide_image(root / "JPEGImages" / f"{stem}.png", seed=i)
        answer = predictor.predict(str(path))
        height, width = np.asarray(Image.open(path)).shape[:2]
        x1, y1, x2, y2 = answer.box_pixels
        clipped = [max(x1, 0.0), max(y1, 0.0), min(x2, width), min(y2, height)]
        other = names[answer.class_id]
        target = names[(answer.class_id + 1) % len(names)]
        clipped = [round(v, 2) for v in clipped]
        objects = [(target, (0, 0, width, height)), (other, clipped)]
        parts = [
            f"<annotation><filename>{stem}.png</filename><size><width>{width}</width><height>{height}</height></size>"
        ]
        for name, (a, b, c, d) in objects:  # VOC corners are 1-based: + 1 on the minimum
            parts.append(
                f"<object><name>{name}</name><bndbox><xmin>{a + 1}</xmin><ymin>{b + 1}</ymin>"
                f"<xmax>{c}</xmax><ymax>{d}</ymax></bndbox></object>"
            )
        (root / "Annotations" / f"{stem}.xml").write_text("".join(parts) + "</annotation>")
        stems.append(stem)
        expected.append(_pixel_iou(answer.box_pixels, clipped) >= 0.5)
    (root / "ImageSets" / "Main" / "test.txt").write_text("\n".join(stems) + "\n")
    report = evaluate_lib.evaluate(
        letterbox_run["copied"], data=f"voc:{root}", split="test", threshold=0.0, pictures=False
    )
    assert report["loc_accuracy"] == 0.0
    assert report["several_objects"]["images"] == 8
    assert sum(expected) >= 4, (
        f"{expected}: the model's boxes are mostly outside the pictures; the check would say little"
    )
    assert report["loc_accuracy_any_object"] == pytest.approx(np.mean(expected))


@pytest.mark.slow
def test_a_tfds_source_reports_the_any_object_figure_too(letterbox_run):
    import tensorflow_datasets as tfds
    from test_sources import ROAD, _voc_like_examples

    from locnet_tf.data import sources

    source = sources.Source("tfds:voc/2007", unknown="ignore_object", **ROAD)
    with tfds.testing.mock_data(as_dataset_fn=_voc_like_examples):
        report = evaluate_lib.evaluate(letterbox_run["copied"], data=source, split="train", pictures=False)
    # a.jpg: a person beside the larger motorbike, the only image with two objects of the classes.
    assert report["counts"]["images"] == 4 and report["several_objects"]["images"] == 1
    assert report["loc_accuracy"] <= report["loc_accuracy_any_object"] <= report["loc_accuracy"] + 0.25


@pytest.mark.slow
def test_a_copied_model_exports_with_its_resize(letterbox_run, wide_photos, tmp_path):
    out = tmp_path / "export"
    metadata = export.export_model(
        letterbox_run["copied"],
        out,
        formats=("tflite",),
        quantize=("float32",),
        data=wide_photos,
        split="train",
        verbose=False,
    )
    assert metadata["resize"] == "letterbox"
    written = json.loads((out / "metadata.json").read_text())
    assert written["resize"] == "letterbox"
    smoke = letterbox_run["config"]
    assert written["build_arguments"]["filters"] == list(smoke.filters)
    assert written["build_arguments"]["head_units"] == smoke.head_units
    card = (out / "README.md").read_text()
    assert "with `letterbox`" in card and "**Network**" in card and "head_units 32" in card
    # The .tflite carries it too, and predicts as the Keras model does.
    lite = inference.Predictor(out / "model_float32.tflite")
    assert lite.resize == "letterbox"
    image = wide_image(tmp_path / "wide.png")
    keras_box = inference.Predictor(letterbox_run["copied"]).predict(image).box
    np.testing.assert_allclose(lite.predict(image).box, keras_box, atol=1e-4)


def test_init_from_a_copied_model_takes_its_architecture(letterbox_run):
    copied = letterbox_run["copied"]
    smoke = letterbox_run["config"]
    arch = transfer.architecture(transfer.load(copied))
    for key in transfer.ARCHITECTURE_FIELDS:
        assert arch[key] == getattr(smoke, key), key
    assert arch["image_size"] == smoke.image_size
    # From the default config (other filters, widths): --init fills them in from the file.
    started = recipe.with_init(config_lib.Config(init=str(copied)), given={"init"}, notice=lambda line: None)
    assert (started.filters, started.head_channels, started.head_units) == (
        smoke.filters,
        smoke.head_channels,
        smoke.head_units,
    )
    assert train_lib._load_init(started) is not None  # train accepts it: the architectures agree
