"""predict: one JSON line per image, pictures with --out."""

import json

import numpy as np
import pytest
from PIL import Image

from locnet_tf.evaluate import predictor as inference
from locnet_tf import predict
from locnet_tf.core import outputs


@pytest.fixture
def image_files(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    paths = [tmp_path / "a" / "road.png", tmp_path / "b" / "road.jpg", tmp_path / "wide.jpg"]
    for path, size in zip(paths, [(70, 90), (64, 64), (40, 160)]):
        Image.fromarray(rng.integers(0, 256, size + (3,), dtype=np.uint8)).save(path)
    return paths


def test_cli_prints_json_lines_and_writes_pictures(smoke, image_files, tmp_path, capsys):
    model = smoke["export"] / "model_int8.tflite"
    out = tmp_path / "pictures"
    assert predict.main([str(model), *map(str, image_files), "--out", str(out), "--threads", "1"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [row["image"] for row in lines] == [str(p) for p in image_files]
    predictor = inference.Predictor(model, num_threads=1)
    for row, path in zip(lines, image_files):
        assert row == {
            **predictor.predict(path).to_dict(),
            "image": str(path),
            "source": str(path),
            "frame": 0,
            "timestamp": None,
            "picture": row["picture"],
        }
    # Same stem twice: two pictures, neither overwritten.
    assert sorted(p.name for p in out.iterdir() if p.name != outputs.MARKER) == ["road.png", "road_2.png", "wide.png"]
    for row in lines:
        with Image.open(row["picture"]) as picture:
            assert picture.format == "PNG" and min(picture.size) > 100
            pixels = np.asarray(picture.convert("RGB"))
            assert pixels.std() > 10  # an image was drawn, not a blank canvas


def test_predict_images_without_pictures(smoke, image_files):
    rows = predict.predict_images(smoke["model"], image_files[:1], presence_threshold=0.0)
    assert len(rows) == 1 and "picture" not in rows[0]
    assert rows[0]["present"] is True and rows[0]["image_size"] == [70, 90]
    assert rows[0]["class_name"] in ("pedestrian", "car", "motorcycle")


def test_missing_or_broken_images_fail_naming_the_file(tmp_path, image_files):
    from locnet_tf.core.errors import DataError

    with pytest.raises(FileNotFoundError, match="nothere.jpg: no such image file"):
        inference.load_image(tmp_path / "nothere.jpg")
    with pytest.raises(FileNotFoundError, match="nothere.jpg: no such file, folder, camera or stream"):
        predict.predict_images(None, [tmp_path / "nothere.jpg"], predictor=object())
    jpeg = next(p for p in image_files if str(p).endswith((".jpg", ".jpeg")))
    truncated = tmp_path / "half.jpg"
    data = open(jpeg, "rb").read()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"half\.jpg: JPEG image is truncated"):
        inference.load_image(truncated)
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(DataError, match=r"notes\.png: not a JPEG, PNG, GIF or BMP image"):
        inference.load_image(tmp_path / "notes.png")


def test_command_line_errors_are_one_line_not_a_traceback(tmp_path, capsys, monkeypatch):
    from locnet_tf.core import cli
    from locnet_tf.core.errors import DataError

    def bad_data(argv):
        raise DataError("labels.csv:3: box has zero size")

    monkeypatch.delenv(cli.TRACEBACK_ENV, raising=False)
    assert cli.run(bad_data, skip_bad_hint=True) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: labels.csv:3: box has zero size\n") and "--skip-bad" in err
    assert cli.run(lambda argv: predict.main([str(tmp_path / "none.keras"), "x.jpg"])) == 1
    assert "none.keras" in capsys.readouterr().err
    # a bug is not a user error: its traceback stays
    with pytest.raises(ZeroDivisionError):
        cli.run(lambda argv: 1 / 0)
    monkeypatch.setenv(cli.TRACEBACK_ENV, "1")
    with pytest.raises(DataError):
        cli.run(bad_data)
