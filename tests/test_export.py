"""Export: every format from a smoke-trained model, parity gates, clean failures.

The smoke model and its full export are built once per test process by the
`smoke` fixture (conftest.py), shared with the inference, predict, runtime and video tests.
"""

import hashlib
import json
import pathlib

import numpy as np
import pytest
import tensorflow as tf
import keras

from locnet_tf.export import run as export
from locnet_tf.export import __main__ as export_main
from locnet_tf.core import command_configs
from locnet_tf.export import convert
from locnet_tf.export import parity as parity_lib
from locnet_tf.model import network as model_lib
from locnet_tf.data import pipeline

from helpers import SMOKE_IMAGE_SIZE as IMAGE_SIZE
from helpers import SMOKE_SPEC as SPEC


def _snapshot(folder):
    """{relative path: sha256} of every file under `folder`."""
    folder = pathlib.Path(folder)
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _test_images(smoke, count=8):
    dataset = pipeline.make_dataset(
        SPEC, "test", image_size=IMAGE_SIZE, batch_size=count, data_dir=smoke["data_dir"], shuffle=False, augment=False
    )
    images, targets = next(iter(dataset))
    return images.numpy(), targets.numpy()


# ----------------------------------------------------------------------------
# The complete export.


def test_every_format_is_written_and_passes_the_gates(smoke):
    out = smoke["export"]
    names = {p.name for p in out.iterdir()}
    assert {
        "saved_model",
        "model_float32.tflite",
        "model_float16.tflite",
        "model_dynamic.tflite",
        "model_int8.tflite",
        "metadata.json",
        "parity.json",
        "labels.txt",
        "README.md",
    } <= names
    # Nothing half-written is left beside it.
    assert [p.name for p in out.parent.iterdir()] == ["smoke"]

    metadata = json.loads((out / "metadata.json").read_text())
    results = metadata["parity"]["results"]
    assert set(results) == {
        "keras",
        "saved_model",
        "saved_model:serving_fixed",
        "tflite_float32",
        "tflite_float16",
        "tflite_dynamic",
        "tflite_int8",
    }
    assert metadata["parity"]["images"] == 24  # the whole tiny test split
    assert parity_lib.check_gates(results, parity_lib.Gates()) == []
    for name in ("saved_model", "saved_model:serving_fixed", "tflite_float32"):
        assert max(results[name]["max_abs_diff"].values()) <= 1e-4
    assert results["tflite_float16"]["box_iou"] >= 0.98
    assert results["keras"]["loc_accuracy"] - results["tflite_int8"]["loc_accuracy"] <= 0.01
    for row in results.values():
        for key in ("pc_agreement", "class_agreement", "box_iou", "loc_accuracy", "pc_accuracy", "mean_iou"):
            assert 0.0 <= row[key] <= 1.0
    assert json.loads((out / "parity.json").read_text()) == metadata["parity"]


def test_metadata_labels_and_card(smoke):
    out = smoke["export"]
    metadata = json.loads((out / "metadata.json").read_text())
    model = keras.models.load_model(smoke["model"])
    assert metadata["classes"] == model_lib.class_names(model)
    assert (out / "labels.txt").read_text().splitlines() == metadata["classes"]
    assert metadata["presence_threshold"] == model_lib.presence_threshold(model)
    assert metadata["input"]["size"] == IMAGE_SIZE
    assert metadata["source_sha256"] == hashlib.sha256(smoke["model"].read_bytes()).hexdigest()
    assert metadata["target_vector"][:5] == ["p_c", "b_x", "b_y", "b_h", "b_w"]
    assert metadata["calibration"] == {"split": "train", "samples": 32}
    for artifact in metadata["artifacts"].values():
        assert artifact["bytes"] > 0 and (out / artifact["path"]).exists()
    assert metadata["artifacts"]["tflite_int8"]["dtype"] == "uint8"
    # The SavedModel carries its metadata with it.
    assert json.loads((out / "saved_model" / "assets.extra" / "metadata.json").read_text()) == metadata
    card = (out / "README.md").read_text()
    assert "tflite_int8" in card and "pedestrian" in card and "height before width" in card


def test_saved_model_signatures(smoke):
    loaded = tf.saved_model.load(str(smoke["export"] / "saved_model"))
    assert set(loaded.signatures) == {"serving_default", "serving_fixed", "serving_encoded"}
    images, _ = _test_images(smoke, 4)
    model = keras.models.load_model(smoke["model"])
    expected = np.asarray(model(images, training=False))

    fixed = loaded.signatures["serving_fixed"](images=tf.constant(images))
    assert set(fixed) == {"p_c", "box", "box_xyxy", "class_id", "class_scores"}
    np.testing.assert_allclose(fixed["p_c"], expected[:, 0], atol=1e-5)
    np.testing.assert_allclose(fixed["box"], expected[:, 1:5], atol=1e-5)
    np.testing.assert_array_equal(fixed["class_id"], expected[:, 5:].argmax(-1))
    # box_xyxy: x1 = b_x - b_w / 2, y1 = b_y - b_h / 2 (height before width).
    box = expected[:, 1:5]
    np.testing.assert_allclose(fixed["box_xyxy"][:, 0], box[:, 0] - box[:, 3] / 2, atol=1e-5)
    np.testing.assert_allclose(fixed["box_xyxy"][:, 3], box[:, 1] + box[:, 2] / 2, atol=1e-5)

    # Any size in, resized inside the graph exactly like the pipeline does.
    big = tf.image.resize(images, (96, 130)).numpy().round().clip(0, 255).astype(np.uint8)
    resized = np.stack(
        [
            pipeline.resize({"image": img, "box": np.zeros(4, np.float32), "present": False}, IMAGE_SIZE)["image"]
            for img in big
        ]
    ).astype(np.float32)
    out = loaded.signatures["serving_default"](images=tf.constant(big))
    np.testing.assert_allclose(out["p_c"], np.asarray(model(resized))[:, 0], atol=1e-5)


def test_tflite_files_use_builtin_ops_and_named_outputs(smoke):
    from ai_edge_litert.interpreter import Interpreter

    for quantization in command_configs.QUANTIZATIONS:
        interpreter = Interpreter(model_path=str(smoke["export"] / f"model_{quantization}.tflite"))
        signature = interpreter.get_signature_list()["serving_default"]
        assert sorted(signature["outputs"]) == ["box", "box_xyxy", "class_id", "class_scores", "p_c"]
        ops = {op["op_name"] for op in interpreter._get_ops_details()}
        assert not any(op.startswith("Flex") or op == "CUSTOM" for op in ops), (quantization, ops)
        detail = interpreter.get_signature_runner("serving_default").get_input_details()["images"]
        assert detail["dtype"] == (np.uint8 if quantization == "int8" else np.float32)
        assert detail["shape"].tolist() == [1, IMAGE_SIZE, IMAGE_SIZE, 3]
        assert "SHAPE" not in ops  # static shapes: nothing left to compute at run time
        if quantization == "int8":
            # Full-integer: the convolutions run in int8.
            tensor_types = {t["dtype"] for t in interpreter.get_tensor_details()}
            assert np.int8 in tensor_types


def test_the_window_around_the_peak_runs_in_int8_when_every_cell_ties(tmp_path):
    # An int8 model's logits are coarse, so several cells often tie for the strongest: the
    # window (`layers.peak_window`) must convert to int8 built-in ops and read the same box
    # there as Keras does (a sum of every tied cell's vote must not run past an int8
    # tensor's range). Zeroed "where" weights make every cell tie on every image.
    from ai_edge_litert.interpreter import Interpreter

    keras.utils.set_random_seed(0)
    model = model_lib.build_model(image_size=32, filters=(8, 8, 8, 8), depths=(1, 1, 1), head_units=16)
    where = model.get_layer("where_logits")
    where.set_weights([np.zeros_like(w) for w in where.get_weights()])
    images = np.random.default_rng(0).uniform(0, 255, (16, 32, 32, 3)).astype(np.float32)
    convert.write_tflite_source(model, tmp_path / "source")
    int8 = convert.convert_tflite(tmp_path / "source", "int8", lambda: ([image[None]] for image in images))
    runner = Interpreter(model_content=int8).get_signature_runner("serving_default")
    want = np.asarray(model(images, training=False))[:, 1:5]
    for image, box in zip(images, want):
        got = runner(images=image[None].astype(np.uint8))["box"][0]
        # Within about half a cell of the 4 x 4 map (0.25 a cell): int8's rounding moves the
        # window's soft edge a little, which shifts the mean by a fraction of a cell.
        np.testing.assert_allclose(got, box, atol=0.15)


def test_export_reads_config_json_beside_the_model(tmp_path):
    (tmp_path / "config.json").write_text(
        json.dumps(
            {
                "data": "csv:labels.csv",
                "data_dir": None,
                "resize": "letterbox",
                "class_map": "person=pedestrian",
                "multi_object": "largest",
                "skip_bad": False,
            }
        )
    )
    settings = parity_lib.data_settings(tmp_path / "model.keras")
    assert settings["data"] == "csv:labels.csv" and settings["resize"] == "letterbox"
    assert settings["source_kwargs"] == {
        "class_map": {"person": "pedestrian"},
        "multi_object": "largest",
        "skip_bad": False,
    }
    # An explicit --data wins; with no config the default is synthetic.
    assert parity_lib.data_settings(tmp_path / "model.keras", data="synthetic/tiny")["data"] == "synthetic/tiny"
    assert parity_lib.data_settings(tmp_path / "other" / "model.keras")["data"] == "synthetic"
    # The run's own data named explicitly keeps the run's reader options;
    # --skip-bad sets that one, with or without a config.
    same = parity_lib.data_settings(tmp_path / "model.keras", data="csv:labels.csv", skip_bad=True)
    assert same["source_kwargs"] == {"class_map": {"person": "pedestrian"}, "multi_object": "largest", "skip_bad": True}
    other = parity_lib.data_settings(tmp_path / "model.keras", data="synthetic/tiny")
    assert other["source_kwargs"] == {}
    assert parity_lib.data_settings(tmp_path / "other" / "model.keras", data="csv:x.csv", skip_bad=True)[
        "source_kwargs"
    ] == {"skip_bad": True}
    assert export.default_out("runs/exp1/model.keras") == pathlib.Path("export/exp1")
    assert export.default_out("models/car.keras") == pathlib.Path("export/car")


# ----------------------------------------------------------------------------
# Gates and failures.


def _row(quantization, diff=0.0, iou=1.0, loc=0.8):
    return {
        "quantization": quantization,
        "max_abs_diff": {"p_c": diff, "box": diff},
        "pc_agreement": 1.0,
        "class_agreement": 1.0,
        "box_iou": iou,
        "loc_accuracy": loc,
    }


def test_check_gates_on_hand_made_reports():
    gates = parity_lib.Gates()
    parity = {
        "keras": _row("float32"),
        "tflite_float32": _row("float32", diff=5e-5),
        "tflite_float16": _row("float16", iou=0.985),
        "tflite_int8": _row("int8", loc=0.795),
    }
    assert parity_lib.check_gates(parity, gates) == []
    parity = {
        "keras": _row("float32"),
        "tflite_float32": _row("float32", diff=2e-4),
        "tflite_float16": _row("float16", iou=0.97),
        "tflite_int8": _row("int8", loc=0.78),
    }
    failures = parity_lib.check_gates(parity, gates)
    assert len(failures) == 3
    assert "tflite_float32" in failures[0] and "0.0002" in failures[0]
    assert "tflite_float16" in failures[1] and "0.9700" in failures[1]
    # 0.80 - 0.78 = 0.02: two points lost, one allowed.
    assert "tflite_int8" in failures[2] and "2.00 points" in failures[2]


def _previous_export(tmp_path, smoke):
    """A copy of the smoke export to overwrite, and its snapshot."""
    import shutil

    out = tmp_path / "export" / "smoke"
    shutil.copytree(smoke["export"], out)
    return out, _snapshot(out)


@pytest.mark.parametrize(
    "quantization, gates, message",
    [
        ("float16", parity_lib.Gates(float16_min_box_iou=1.01), "tflite_float16: boxes agree with Keras"),
        # int8 would have to *gain* 50 points of accuracy: impossible.
        ("int8", parity_lib.Gates(int8_max_loc_drop=-0.5), "tflite_int8: localization accuracy"),
    ],
)
def test_an_impossible_gate_fails_and_keeps_the_previous_export(tmp_path, smoke, quantization, gates, message):
    out, before = _previous_export(tmp_path, smoke)
    with pytest.raises(convert.ExportError, match=message):
        export.export_model(
            smoke["model"],
            out,
            formats=["tflite"],
            quantize=[quantization],
            data=SPEC,
            data_dir=smoke["data_dir"],
            calibration_samples=8,
            gates=gates,
            verbose=False,
        )
    assert _snapshot(out) == before
    assert [p.name for p in out.parent.iterdir()] == ["smoke"]


def test_a_corrupted_tflite_file_fails_cleanly(tmp_path, smoke, monkeypatch):
    out, before = _previous_export(tmp_path, smoke)
    real = convert.convert_tflite

    def corrupted(*args, **kwargs):
        return real(*args, **kwargs)[:1000]  # a truncated flatbuffer

    monkeypatch.setattr(export, "convert_tflite", corrupted)
    with pytest.raises(convert.ExportError, match="model_float32.tflite: the exported file does not load"):
        export.export_model(
            smoke["model"],
            out,
            formats=["tflite"],
            quantize=["float32"],
            data=SPEC,
            data_dir=smoke["data_dir"],
            verbose=False,
        )
    assert _snapshot(out) == before
    assert [p.name for p in out.parent.iterdir()] == ["smoke"]


def test_cli_reports_a_failed_gate_and_exit_code(tmp_path, smoke, capsys):
    out = tmp_path / "fresh"
    code = export_main.main(
        [
            str(smoke["model"]),
            "--out",
            str(out),
            "--formats",
            "saved_model",
            "--data",
            SPEC,
            "--data-dir",
            smoke["data_dir"],
            "--max-float32-diff",
            "-1",
        ]
    )
    assert code == 1
    captured = capsys.readouterr()
    assert "error: Export failed its parity gates" in captured.err
    assert "saved_model: max abs difference" in captured.err
    assert "saved_model:serving_fixed" in captured.out  # the parity table was printed
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_cli_exports_one_format(tmp_path, smoke, capsys):
    out = tmp_path / "one"
    code = export_main.main(
        [
            str(smoke["model"]),
            "--out",
            str(out),
            "--formats",
            "tflite",
            "--quantize",
            "dynamic",
            "--data",
            SPEC,
            "--data-dir",
            smoke["data_dir"],
            "--quiet",
        ]
    )
    assert code == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["artifacts"] == ["tflite_dynamic"]
    assert sorted(p.name for p in out.iterdir()) == [
        ".locnet_tf.json",  # the marker: export wrote this folder (locnet_tf.core.outputs)
        "README.md",
        "labels.txt",
        "metadata.json",
        "model_dynamic.tflite",
        "parity.json",
    ]


def test_export_needs_a_keras_file(tmp_path, smoke):
    with pytest.raises(ValueError, match="needs a .keras model file"):
        export.export_model(smoke["export"] / "model_float32.tflite", tmp_path / "x")
    with pytest.raises(FileNotFoundError, match="nope.keras: no such model file"):
        export.export_model(tmp_path / "nope.keras", tmp_path / "x")
    with pytest.raises(ValueError, match="Unknown formats"):
        export.export_model(smoke["model"], tmp_path / "x", formats=["onnx"])
    assert list(tmp_path.iterdir()) == []


def test_evaluate_takes_exported_models_and_agrees_with_parity(smoke):
    from locnet_tf.evaluate import run as evaluate

    metadata = json.loads((smoke["export"] / "metadata.json").read_text())
    data_dir = smoke["data_dir"]
    keras_report = evaluate.evaluate(str(smoke["model"]), data=SPEC, data_dir=data_dir, pictures=False)
    for name, path in [("tflite_float32", "model_float32.tflite"), ("saved_model", "saved_model")]:
        report = evaluate.evaluate(str(smoke["export"] / path), data=SPEC, data_dir=data_dir, pictures=False)
        assert report["counts"] == keras_report["counts"]
        parity = metadata["parity"]["results"][name]
        for key in ("pc_accuracy", "mean_iou", "loc_accuracy"):
            assert report[key] == pytest.approx(parity[key], abs=1e-6), (name, key)
        assert report["loc_accuracy"] == pytest.approx(keras_report["loc_accuracy"], abs=1e-9)
