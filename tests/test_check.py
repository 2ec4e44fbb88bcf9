"""The check command: the eager function, the CLI, and the drawing helper."""

import json
import pathlib

import numpy as np
import pytest
from PIL import Image

from locnet_tf.core import figures as plots
from locnet_tf.data import check as check_lib
from locnet_tf.core.errors import DataError


def make_source(root):
    """Six images: 3 cars (two with a second, smaller pedestrian), 1 pedestrian, 2 background."""
    rows = []
    for i in range(6):
        Image.new("RGB", (100, 50), (40 * i, 90, 160)).save(root / f"{i}.png")
    rows += ["0.png,0,0,50,50,car", "0.png,0,0,10,10,pedestrian", "1.png,0,0,100,50,car"]
    rows += ["2.png,0,0,25,25,car", "2.png,60,0,70,10,pedestrian", "3.png,10,10,30,40,pedestrian"]
    rows += ["4.png,,,,,", "5.png"]
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return f"csv:{root / 'labels.csv'}"


def test_check_counts_classes_background_and_box_spread(tmp_path):
    spec = make_source(tmp_path)
    lines = []
    report = check_lib.check(spec, print_fn=lines.append)
    assert report["class_names"] == ["car", "pedestrian"]
    assert report["total"] == {"images": 6, "background": 2, "per_class": {"car": 3, "pedestrian": 1}}
    assert sum(s["images"] for s in report["splits"].values()) == 6
    assert report["background_share"] == pytest.approx(2 / 6)
    # Relative areas (w * h on 100x50 images) of the kept boxes: 0.5*1, 1*1, 0.25*0.5,
    # 0.2*0.6 -> median of (0.12, 0.125, 0.5, 1.0) = (0.125 + 0.5) / 2.
    assert report["box"]["area"]["p50"] == pytest.approx(0.3125)
    assert report["box"]["area"]["min"] == pytest.approx(0.12)
    assert report["box"]["width"]["max"] == pytest.approx(1.0)
    assert report["skipped"] == 0 and report["grid"] is None
    text = "\n".join(lines)
    assert "background share: 33.3%" in text and "problems: none" in text


def test_check_reports_problems_and_policies(tmp_path):
    spec = make_source(tmp_path)
    with open(tmp_path / "labels.csv", "a") as f:
        f.write("missing.png,1,1,5,5,car\n")
    with pytest.raises(DataError, match=r"labels\.csv:9.*not found"):
        check_lib.check(spec, print_fn=None)
    lines = []
    report = check_lib.check(
        spec, skip_bad=True, multi_object="drop", class_map="pedestrian=person", print_fn=lines.append
    )
    assert report["class_names"] == ["car", "person"]
    assert report["skipped"] == 3  # the missing file and two multi-object images
    assert [p[0] for p in report["problems"]] == ["labels.csv:1", "labels.csv:4", "labels.csv:9"]
    assert report["total"]["images"] == 4
    assert "problems: 3 entries skipped" in "\n".join(lines)


def test_main_writes_grid_and_json(tmp_path, capsys):
    spec = make_source(tmp_path)
    grid, report_path = tmp_path / "out" / "grid.png", tmp_path / "report.json"
    assert check_lib.main([spec, "--grid", str(grid), "--json", str(report_path)]) == 0
    with Image.open(grid) as image:
        assert image.format == "PNG" and min(image.size) > 100
        pixels = np.asarray(image.convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 10  # drawn, not blank
    report = json.loads(report_path.read_text())
    assert report["grid"] == str(grid) and report["total"]["images"] == 6
    assert "Source csv:" in capsys.readouterr().out
    # Bad data: a clear message and a non-zero exit, no traceback.
    with open(tmp_path / "labels.csv", "a") as f:
        f.write("0.png,1,1,1,5,car\n")
    assert check_lib.main([spec, "--quick"]) == 1
    assert "labels.csv:9: box has zero size" in capsys.readouterr().err


def test_check_one_split_only(tmp_path):
    spec = make_source(tmp_path)
    report = check_lib.check(spec, split="train", print_fn=None)
    assert list(report["splits"]) == ["train"]
    assert report["total"]["images"] == report["splits"]["train"]["images"]


def test_check_tfds_examples_through_the_mock(tmp_path):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=3, policy=tfds.testing.MockPolicy.USE_CODE):
        report = check_lib.check("tfds:caltech_birds2011", split="train", grid=tmp_path / "g.png", print_fn=None)
    assert report["total"]["images"] == 3 and report["background_share"] == 0.0
    assert len(report["class_names"]) == 200
    assert pathlib.Path(report["grid"]).is_file()


def test_draw_examples_grid_draws_the_box_where_it_belongs(tmp_path):
    image = np.full((60, 120, 3), 255, np.uint8)
    gray = np.full((40, 40), 200, np.uint8)
    args = (
        [image, gray],
        # Box centred at x = 0.25, y = 0.5 with height 0.5 and width 0.25 of a 120x60 image:
        # x from (0.25 - 0.125) * 120 = 15 to 45, y from (0.5 - 0.25) * 60 = 15 to 45.
        [[0.25, 0.5, 0.5, 0.25], [0, 0, 0, 0]],
        [1, 0],
        ["pedestrian", "car"],
    )
    figure = plots.draw_examples_grid(*args, present=[True, False], scores=[0.9, 0.1])
    first, second = figure.axes[:2]
    (patch,) = first.patches
    np.testing.assert_allclose(patch.get_bbox().bounds, [15, 15, 30, 30])
    assert first.get_title() == "car 0.90"
    assert len(second.patches) == 0 and second.get_title() == "background 0.10"
    path = plots.draw_examples_grid(*args, tmp_path / "grid.png", present=[True, False], columns=1)
    pixels = np.asarray(Image.open(path).convert("RGB")).astype(int)
    # The box colour of class 1 (#3cb44b) is in the picture.
    assert ((abs(pixels - [0x3C, 0xB4, 0x4B]).sum(axis=-1) < 40).sum()) > 50
    with pytest.raises(ValueError, match="at least one image"):
        plots.draw_examples_grid([], [], [], ["a"], tmp_path / "x.png")


def test_check_synthetic_through_the_pipeline(tmp_path):
    pipeline = pytest.importorskip("locnet_tf.data.pipeline")
    if not hasattr(pipeline, "examples"):
        pytest.skip("locnet_tf.data.pipeline.examples is not there yet")
    report = check_lib.check(
        "synthetic/tiny", split="validation", data_dir=str(tmp_path / "tfds"), grid=tmp_path / "s.png", print_fn=None
    )
    assert report["class_names"] == ["pedestrian", "car", "motorcycle"]
    assert report["total"]["images"] > 0
    assert 0.1 < report["background_share"] < 0.4  # about a quarter by design
    assert 0 < report["box"]["area"]["p50"] < 1
    assert pathlib.Path(report["grid"]).is_file()
