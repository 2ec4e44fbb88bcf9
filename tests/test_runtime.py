"""The TensorFlow-free runtime: lazy imports, self-describing .tflite files, metadata.json checks."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from locnet_tf.evaluate import predictor as inference
from locnet_tf.runtime import metadata as tflite_metadata
from locnet_tf.runtime import prediction as prediction_lib
from locnet_tf.runtime import tflite as runtime
from locnet_tf.core import geometry
from conftest import REPO as REPO_ROOT

CLASSES = ["pedestrian", "car", "motorcycle"]

# Run in a fresh interpreter where TensorFlow, Keras, TFDS and matplotlib cannot be
# imported (as on a device that has only numpy, Pillow, LiteRT and PyAV).
BLOCKER = textwrap.dedent("""
    import runpy, sys

    class Blocker:
        blocked = ("tensorflow", "keras", "tensorflow_datasets", "tf_keras", "matplotlib")

        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in self.blocked:
                raise ImportError(f"{name} is blocked in this test")
            return None

    sys.meta_path.insert(0, Blocker())
    sys.argv = ["locnet_tf.predict"] + sys.argv[1:]
    runpy.run_module("locnet_tf.predict", run_name="__main__")
""")


def _run(code, *args, env=None):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=REPO_ROOT,
    )


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Image files of several sizes, one of them stored sideways with an EXIF orientation."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(3)
    paths = []
    for i, (h, w) in enumerate([(64, 64), (90, 140), (120, 50)]):
        pixels = np.asarray(Image.fromarray(rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8)).resize((w, h)))
        path = folder / f"photo{i}.png"
        Image.fromarray(pixels).save(path)
        paths.append(path)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(pixels).save(folder / "sideways.jpg", quality=95, exif=exif.tobytes())
    return paths + [folder / "sideways.jpg"]


def test_import_locnet_tf_loads_no_tensorflow():
    result = _run(
        "import sys, locnet_tf, locnet_tf.runtime, locnet_tf.evaluate.predictor, locnet_tf.predict\n"
        "import locnet_tf.runtime.video\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'tensorflow_datasets', 'matplotlib') if m in sys.modules]\n"
        "print(heavy)"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_predict_runs_a_tflite_where_tensorflow_cannot_be_imported(smoke, photos, tmp_path):
    model = tmp_path / "model_float32.tflite"  # copied alone: its metadata is inside
    shutil.copy(smoke["export"] / "model_float32.tflite", model)
    out = tmp_path / "pictures"
    result = _run(BLOCKER, model, *photos, "--threads", "1", "--out", out)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["source"] for row in rows] == [str(p) for p in photos]
    assert "4 frames from 4 sources" in result.stderr
    pictures = sorted(p.name for p in out.iterdir() if p.name != ".locnet_tf.json")  # the marker: predict's folder
    assert pictures == ["photo0.png", "photo1.png", "photo2.png", "sideways.png"]
    # The same numbers as in this process, where the resize runs in TensorFlow
    # (the pipeline's) and the Predictor decodes.
    from locnet_tf.data import decode as decode_lib

    predictor = inference.Predictor(model, num_threads=1)
    for row, path in zip(rows, photos):
        image = decode_lib.read_image(str(path)).numpy()  # TF's reader: EXIF applied, same pixels
        height, width = image.shape[:2]
        assert row["image_size"] == [height, width]
        raw = predictor.raw(inference.preprocess(image, predictor.image_size, predictor.resize).numpy()[None])
        box = geometry.boxes_to_original_tf(raw["box"], height, width, predictor.image_size, predictor.resize).numpy()
        np.testing.assert_allclose(row["box"], box[0], atol=1e-5, rtol=0)
        np.testing.assert_allclose(row["class_scores"], raw["class_scores"][0], atol=1e-5, rtol=0)
        assert abs(row["p_c"] - float(raw["p_c"][0])) <= 1e-5
        expected = predictor.predict(path).to_dict()
        for key in ("p_c", "box", "box_xyxy", "box_pixels", "class_scores", "score"):
            np.testing.assert_allclose(row[key], expected[key], atol=1e-5, rtol=0, err_msg=key)
        assert (row["class_name"], row["present"]) == (expected["class_name"], expected["present"])
    assert rows[-1]["image_size"] == [50, 120]  # sideways.jpg: stored 120 tall x 50 wide, shown turned


def test_the_tflite_files_describe_themselves(smoke):
    metadata = smoke["metadata"]
    for quantization, dtype in (("float32", "float32"), ("int8", "uint8")):
        path = smoke["export"] / f"model_{quantization}.tflite"
        inside = tflite_metadata.read(path)
        assert inside["classes"] == CLASSES
        assert inside["presence_threshold"] == metadata["presence_threshold"]
        assert inside["input"]["size"] == metadata["input"]["size"] and inside["input"]["dtype"] == dtype
        assert inside["resize"] == metadata["resize"] and inside["quantization"] == quantization
        assert inside["source_sha256"] == metadata["source_sha256"]
        assert "b_h" in inside["box_format"]["box"]
        # metadata.json lists each file by its hash.
        assert metadata["artifacts"][f"tflite_{quantization}"]["sha256"] == runtime.sha256(path)


def test_embedding_keeps_the_model_and_replaces_an_old_entry(smoke):
    content = (smoke["export"] / "model_int8.tflite").read_bytes()
    again = tflite_metadata.embed(content, {"classes": ["x", "y", "z"]})
    assert tflite_metadata.read(again)["classes"] == ["x", "y", "z"]
    from ai_edge_litert import schema_py_generated as schema

    names = [
        schema.Model.GetRootAs(again, 0).Metadata(i).Name()
        for i in range(schema.Model.GetRootAs(again, 0).MetadataLength())
    ]
    assert names.count(tflite_metadata.NAME.encode()) == 1 and b"min_runtime_version" in names
    image = np.random.default_rng(0).integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
    before, after = runtime.TFLiteRunner(content, num_threads=1)(image), runtime.TFLiteRunner(again, 1)(image)
    for name in prediction_lib.OUTPUT_NAMES:
        np.testing.assert_array_equal(before[name], after[name])
    with pytest.raises(ValueError, match="not a TFLite model"):
        tflite_metadata.read(b"not a flatbuffer at all")


def _strip(path):
    """A copy of an export's .tflite with no metadata inside (as files from before it)."""
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(path.read_bytes()))
    model.metadata = [m for m in model.metadata if m.name not in (b"locnet_tf", "locnet_tf")]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def test_a_metadata_json_of_another_model_is_refused(smoke, tmp_path, photos):
    foreign = json.loads((smoke["export"] / "metadata.json").read_text())
    foreign["classes"] = ["wrong", "labels", "here"]
    for artifact in foreign["artifacts"].values():
        artifact["sha256"] = "0" * 64  # another export's files
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "metadata.json").write_text(json.dumps(foreign))
    # 1. A file with its metadata inside: the foreign json is not used, and we say so.
    shutil.copy(smoke["export"] / "model_int8.tflite", folder / "model_int8.tflite")
    with pytest.warns(UserWarning, match="is not used"):
        predictor = inference.Predictor(folder / "model_int8.tflite")
    assert predictor.class_names == CLASSES
    # 2. A file without metadata beside a foreign json: refused.
    (folder / "model_float32.tflite").write_bytes(_strip(smoke["export"] / "model_float32.tflite"))
    with pytest.raises(ValueError, match="belongs to another model"):
        inference.Predictor(folder / "model_float32.tflite")
    # ... also from the command line, as one error line.
    from locnet_tf.core import cli
    from locnet_tf import predict

    assert cli.run(lambda argv: predict.main([str(folder / "model_float32.tflite"), str(photos[0])])) == 1
    # 3. Its own metadata.json (listing its hash) is used; 4. with neither, class names must be given.
    own = tmp_path / "own"
    own.mkdir()
    stripped = own / "model_float32.tflite"
    stripped.write_bytes(_strip(smoke["export"] / "model_float32.tflite"))
    mine = json.loads((smoke["export"] / "metadata.json").read_text())
    mine["artifacts"]["tflite_float32"]["sha256"] = runtime.sha256(stripped)
    (own / "metadata.json").write_text(json.dumps(mine))
    assert inference.Predictor(stripped).class_names == CLASSES
    (own / "metadata.json").unlink()
    with pytest.raises(ValueError, match="class names are unknown"):
        inference.Predictor(stripped)
    assert predict.main([str(stripped), str(photos[0]), "--classes", "a,b,c", "--quiet"]) == 0
    with pytest.raises(ValueError, match="scores 3 classes but 2 class names"):
        inference.Predictor(stripped, class_names=["a", "b"])


@pytest.mark.parametrize(
    "text",
    [
        "[]",
        '{"artifacts": {"tflite_float32": "model_float32.tflite"}}',
        '{"artifacts": []}',
        '"model"',
        "{not json",
    ],
)
def test_a_malformed_metadata_json_is_ignored_or_one_clear_error(smoke, tmp_path, photos, capsys, text):
    from locnet_tf.core import cli
    from locnet_tf import predict

    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "metadata.json").write_text(text)
    # A file with its metadata inside: the json is not used, and we say why.
    shutil.copy(smoke["export"] / "model_int8.tflite", folder / "model_int8.tflite")
    with pytest.warns(UserWarning, match=r"metadata\.json is not used for \S*model_int8\.tflite: it cannot be read"):
        assert inference.Predictor(folder / "model_int8.tflite").class_names == CLASSES
    # Without: one error naming both files, from the command line one line.
    stripped = folder / "model_float32.tflite"
    stripped.write_bytes(_strip(smoke["export"] / "model_float32.tflite"))
    with pytest.raises(
        ValueError,
        match=r"model_float32\.tflite: carries no metadata, and \S*metadata\.json "
        r"beside it cannot be read \(.+\)\. Re-export the model, or give",
    ):
        inference.Predictor(stripped)
    capsys.readouterr()
    assert cli.run(predict.main, [str(stripped), str(photos[0]), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("error: ") and "cannot be read" in err
    # The class names given: the json is set aside, with a warning.
    with pytest.warns(UserWarning, match="the class names given are"):
        assert inference.Predictor(stripped, class_names=["a", "b", "c"]).class_names == ["a", "b", "c"]


def test_an_export_of_an_older_locnet_tf_says_so(smoke, tmp_path, photos, capsys):
    """metadata.json format 1 listed files without their SHA-256; its .tflite files carried nothing inside."""
    from locnet_tf.core import cli
    from locnet_tf import predict

    folder = tmp_path / "old"
    folder.mkdir()
    old = json.loads((smoke["export"] / "metadata.json").read_text())
    old["format_version"] = 1
    for artifact in old["artifacts"].values():
        artifact.pop("sha256", None)
    (folder / "metadata.json").write_text(json.dumps(old))
    stripped = folder / "model_float32.tflite"
    stripped.write_bytes(_strip(smoke["export"] / "model_float32.tflite"))
    with pytest.raises(
        ValueError,
        match=r"model_float32\.tflite: made by an older locnet_tf .* Re-export the "
        r"model, or give the class names \(--classes",
    ):
        inference.Predictor(stripped)
    assert cli.run(predict.main, [str(stripped), str(photos[0]), "--quiet"]) == 1
    assert "made by an older locnet_tf" in capsys.readouterr().err
    with pytest.warns(UserWarning, match="older locnet_tf"):
        assert predict.main([str(stripped), str(photos[0]), "--classes", "a,b,c", "--quiet"]) == 0


@pytest.mark.parametrize(
    "command", ["locnet_tf.train", "locnet_tf.evaluate", "locnet_tf.export", "locnet_tf.data", "locnet_tf.demo"]
)
def test_commands_that_need_tensorflow_say_what_to_install_on_the_base_install(command):
    blocked = BLOCKER.replace('sys.argv = ["locnet_tf.predict"] + sys.argv[1:]', "sys.argv = sys.argv[1:]")
    blocked = blocked.replace(
        'runpy.run_module("locnet_tf.predict", run_name="__main__")',
        'runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)',
    )
    result = _run(blocked, command, "--help")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: python -m {command} needs tensorflow and keras"), lines
    assert 'pip install ".[train]"' in lines[0]
