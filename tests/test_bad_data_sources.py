"""Issue 27, the data cases (9, 10, 14, 15, 17, 22, 23, 24): nothing silently wrong in a source.

Each row builds its own input (tiny generated images, `bad_input_data`), runs
a command as `python -m` does (`cli.run` around its `main`: D = the data
check, writing its report as JSON; T = train --preset smoke, one step) and
checks the outcome: exit status 1 with exactly one `error:` line naming the
file and the problem, no traceback; or the right result, said loudly where
the issue asks for a warning. Tests after the rows check the results
themselves (boxes, splits, counts) through `load_source`.
"""

import json
import logging
import os
import pathlib
import re

import numpy as np
import pytest

import bad_input_data as bad
from locnet_tf.core.errors import DataError
from locnet_tf.data.sources import load_source

QUICK = bad.QUICK
SIZE = (48, 64)  # make_photo's (height, width)


# ----------------------------------------------------------------------------
# Sources the rows build.


def coco_source(root, images, annotations, categories=((1, "car"), (2, "pedestrian")), json_name="inst.json"):
    """A COCO JSON at `root/json_name`. `images`: (id, file_name[, where to write the picture]).

    `annotations`: (image_id, category_id) pairs, each box the picture's own rectangle. Returns the spec.
    """
    root = pathlib.Path(root)
    entries, boxes = [], {}
    for seed, (image_id, file_name, *where) in enumerate(images):
        target = pathlib.Path(where[0]) if where else root / "images" / file_name
        boxes.setdefault(image_id, bad.make_photo(target, seed))
        entries.append({"id": image_id, "file_name": file_name, "width": SIZE[1], "height": SIZE[0]})
    found = []
    for k, (image_id, category_id) in enumerate(annotations):
        x1, y1, x2, y2 = boxes[image_id]
        found.append({"id": k, "image_id": image_id, "category_id": category_id, "bbox": [x1, y1, x2 - x1, y2 - y1]})
    path = root / json_name
    path.parent.mkdir(parents=True, exist_ok=True)
    cats = [{"id": i, "name": n} for i, n in categories]
    path.write_text(json.dumps({"images": entries, "annotations": found, "categories": cats}))
    return f"coco:{path}"


def twelve_coco(root, **kwargs):
    """A COCO source of 12 images (car, pedestrian alternating): the hash split gives every split some."""
    images = [(i + 1, f"c{i:02d}.jpg") for i in range(12)]
    return coco_source(root, images, [(i + 1, 1 + i % 2) for i in range(12)], **kwargs)


def csv_with_header(root, header, order):
    """A CSV source whose header is `header` and whose rows put (file, x1, y1, x2, y2, label) at `order`."""
    root = pathlib.Path(root)
    lines = [header]
    for i in range(12):
        name = f"img{i:02d}.jpg"
        x1, y1, x2, y2 = bad.make_photo(root / "images" / name, i)
        values = {"filename": name, "x1": x1, "y1": y1, "x2": x2, "y2": y2, "label": bad.CLASSES[i % 2]}
        values.update(width=SIZE[1], height=SIZE[0])
        lines.append(",".join(str(values[key]) for key in order))
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return f"csv:{root / 'labels.csv'}"


def yolo_folder_with_links(root, loop=False):
    """images/ + labels/ (no data.yaml): 6 real images, and 4 more in a subfolder that is a symbolic link.

    The linked folders live outside the source (`root/elsewhere`), as a user's links do. With `loop`,
    images/loop points back at images/ (and labels/loop at labels/). Returns the spec.
    """
    source, elsewhere = pathlib.Path(root) / "yolo", pathlib.Path(root) / "elsewhere"
    for i in range(10):
        folder = (source / "images", source / "labels") if i < 6 else (elsewhere / "images", elsewhere / "labels")
        x1, y1, x2, y2 = bad.make_photo(folder[0] / f"img{i:02d}.jpg", i)
        folder[1].mkdir(parents=True, exist_ok=True)
        (folder[1] / f"img{i:02d}.txt").write_text(
            f"{i % 2} {(x1 + x2) / 128:.4f} {(y1 + y2) / 96:.4f} {(x2 - x1) / 64:.4f} {(y2 - y1) / 48:.4f}\n"
        )
    (source / "classes.txt").write_text("car\npedestrian\n")
    os.symlink(elsewhere / "images", source / "images" / "more")
    os.symlink(elsewhere / "labels", source / "labels" / "more")
    if loop:
        os.symlink(source / "images", source / "images" / "loop")
        os.symlink(source / "labels", source / "labels" / "loop")
        os.symlink("../images", elsewhere / "images" / "back")  # a loop inside the linked folder too
    return f"yolo:{source}"


def _dangling(path):
    """A symbolic link at `path` to a file that does not exist; returns the spec of its YOLO folder."""
    os.symlink(path.parent / "deleted.jpg", path)
    return f"yolo:{path.parent.parent}"


def yolo_yaml(root, yaml_text, **kwargs):
    """`bad.yolo_source` with its data.yaml replaced by `yaml_text`. Returns the spec."""
    spec = bad.yolo_source(root, **kwargs)
    (pathlib.Path(root) / "data.yaml").write_text(yaml_text)
    return spec


YAML = "path: .\ntrain: {train}\nval: {val}\ntest: {test}\nnames: [car, pedestrian]\n"


def only_in(root, split):
    """A YOLO source of 9 images whose pedestrians (class 1) are all in `split` ("test" or "val"). Returns the spec.

    `bad.yolo_source` alternates the classes over train, val and test: every other split's pedestrians
    become cars here.
    """
    spec = bad.yolo_source(root, count=9)
    for label in (pathlib.Path(root) / "labels").rglob("*.txt"):
        text = label.read_text()
        if label.parent.name != split and text.startswith("1 "):
            label.write_text("0 " + text[2:])
    return spec


def two_objects(root):
    """The 12-image CSV source with a second object on img00.jpg (line 14). Returns the spec."""
    spec = bad.csv_source(root)
    with open(pathlib.Path(root) / "labels.csv", "a") as f:
        f.write("img00.jpg,1,1,9,9,pedestrian\n")
    return spec


def outside_names(root):
    """A COCO source whose file_names leave its folder: `../outside/o1.jpg` and an absolute path."""
    root = pathlib.Path(root)
    images = [(i + 1, f"c{i:02d}.jpg") for i in range(8)]
    images += [(20, "../outside/o1.jpg", root / "outside" / "o1.jpg")]
    images += [(21, str(root / "far" / "o2.jpg"), root / "far" / "o2.jpg")]
    annotations = [(i + 1, 1 + i % 2) for i in range(8)] + [(20, 1), (21, 2)]
    return coco_source(root / "coco", images, annotations)


# ----------------------------------------------------------------------------
# What the rows expect.


def error(pattern):
    """Exit status 1 and exactly one `error:` line matching `pattern` (which names the file)."""

    def check(code, err, tmp, caplog):
        lines = bad.error_lines(err)
        assert "Traceback" not in err, err
        assert code == 1 and len(lines) == 1, (code, err)
        assert re.search(pattern, lines[0]), lines[0]

    return check


def checked(test):
    """Exit status 0, no error line; `test(report, warnings)` on the check's JSON report and the logged warnings."""

    def check(code, err, tmp, caplog):
        assert code == 0 and not bad.error_lines(err) and "Traceback" not in err, err
        test(json.loads((tmp / "report.json").read_text()), [r.getMessage() for r in caplog.records])

    return check


def trained(test):
    """Exit status 0 and a model; `test(warnings)` on the logged warnings."""

    def check(code, err, tmp, caplog):
        assert code == 0 and "Traceback" not in err, err
        assert (tmp / "run" / "model.keras").is_file()
        test([r.getMessage() for r in caplog.records])

    return check


def one(warnings, pattern):
    """Exactly one warning matches `pattern`; returns it."""
    found = [w for w in warnings if re.search(pattern, w)]
    assert len(found) == 1, (pattern, warnings)
    return found[0]


def _counts(report, images, splits=None):
    assert report["total"]["images"] == images and report["skipped"] == 0, report
    for split, count in (splits or {}).items():
        assert report["splits"][split]["images"] == count, report["splits"]


def _check(spec, *extra):
    return lambda tmp: [spec(tmp), "--json", tmp / "report.json", *extra]


# ----------------------------------------------------------------------------
# One row per case: (id, command, build(tmp) -> argv, expect).

ROWS = [
    # --- 9: two COCO images with one id
    (
        "9 COCO: two images with the same id",
        "D",
        _check(lambda t: coco_source(t, [(1, "a.jpg"), (2, "b.jpg"), (1, "c.jpg")], [(1, 1), (2, 2)])),
        error(r"inst\.json images\[2\]: image id 1 is used twice, for 'a\.jpg' \(images\[0\]\) and 'c\.jpg'"),
    ),
    (
        "9 COCO: two images with the same id, --skip-bad leaves both out",
        "D",
        _check(lambda t: coco_source(t, [(1, "a.jpg"), (2, "b.jpg"), (1, "c.jpg")], [(1, 1), (2, 2)]), "--skip-bad"),
        checked(
            lambda report, warnings: (
                report["total"]["images"] == 1 or pytest.fail(str(report)),
                [p[0] for p in report["problems"]] == ["inst.json images[2]", "inst.json image a.jpg"]
                or pytest.fail(str(report["problems"])),
            )
        ),
    ),
    # --- 10: two COCO categories with one id
    (
        "10 COCO: two categories with the same id",
        "D",
        _check(lambda t: twelve_coco(t, categories=((1, "cat"), (2, "dog"), (1, "bird")))),
        error(r"inst\.json categories\[2\]: category id 1 is used twice, for 'cat' \(categories\[0\]\) and 'bird'"),
    ),
    (
        "10 COCO: one category written twice alike is no conflict",
        "D",
        _check(lambda t: twelve_coco(t, categories=((1, "car"), (2, "pedestrian"), (1, "car")))),
        checked(lambda report, warnings: _counts(report, 12)),
    ),
    # --- 14: a YOLO image subfolder that is a symbolic link
    (
        "14 YOLO: a symlinked image subfolder is followed",
        "D",
        _check(lambda t: yolo_folder_with_links(t)),
        checked(lambda report, warnings: _counts(report, 10)),
    ),
    (
        "14 YOLO: symlink loops are visited once",
        "D",
        _check(lambda t: yolo_folder_with_links(t, loop=True)),
        checked(lambda report, warnings: _counts(report, 10)),
    ),
    (
        "14 YOLO: a symbolic link to no image is named, not left out",
        "D",
        _check(lambda t: yolo_folder_with_links(t) and _dangling(t / "yolo" / "images" / "gone.jpg")),
        error(r"labels/gone\.txt: image file .*images/gone\.jpg not found"),
    ),
    # --- 15: a CSV header that names another column order
    (
        "15 CSV header filename,ymin,xmin,ymax,xmax,label",
        "D",
        _check(
            lambda t: csv_with_header(
                t, "filename,ymin,xmin,ymax,xmax,label", ("filename", "y1", "x1", "y2", "x2", "label")
            )
        ),
        checked(lambda report, warnings: _counts(report, 12)),
    ),
    (
        "15 CSV header image,xmin,ymin,xmax,ymax,class",
        "D",
        _check(
            lambda t: csv_with_header(
                t, "image,xmin,ymin,xmax,ymax,class", ("filename", "x1", "y1", "x2", "y2", "label")
            )
        ),
        checked(lambda report, warnings: _counts(report, 12)),
    ),
    (
        "15 CSV header of TensorFlow's CSV (width, height, class first)",
        "D",
        _check(
            lambda t: csv_with_header(
                t,
                "filename,width,height,class,xmin,ymin,xmax,ymax",
                ("filename", "width", "height", "label", "x1", "y1", "x2", "y2"),
            )
        ),
        checked(lambda report, warnings: _counts(report, 12)),
    ),
    (
        "15 CSV header x,y,w,h (another box format) is refused",
        "D",
        _check(lambda t: csv_with_header(t, "filename,x,y,w,h,label", ("filename", "x1", "y1", "x2", "y2", "label"))),
        error(r"labels\.csv:1: header 'filename,x,y,w,h,label': column 'x' is not one this reader knows"),
    ),
    (
        "15 CSV header naming one column twice is refused",
        "D",
        _check(
            lambda t: csv_with_header(
                t, "file,xmin,left,xmax,ymax,label", ("filename", "x1", "y1", "x2", "y2", "label")
            )
        ),
        error(r"labels\.csv:1: header 'file,xmin,left,xmax,ymax,label': columns 'xmin' and 'left' both name the x1"),
    ),
    (
        "15 CSV header with an unnamed column is refused",
        "D",
        _check(
            lambda t: csv_with_header(t, "filename,x1,y1,x2,y2,label,", ("filename", "x1", "y1", "x2", "y2", "label"))
        ),
        error(r"labels\.csv:1: header 'filename,x1,y1,x2,y2,label,': column 7 has no name"),
    ),
    (
        "15 CSV header without a label column is refused",
        "D",
        _check(lambda t: csv_with_header(t, "path,x1,y1,x2,y2,width", ("filename", "x1", "y1", "x2", "y2", "width"))),
        error(r"labels\.csv:1: header 'path,x1,y1,x2,y2,width' has no label column"),
    ),
    (
        "15 CSV width,height columns that disagree with the image",
        "D",
        _check(
            lambda t: csv_with_header(
                t,
                "filename,height,width,class,xmin,ymin,xmax,ymax",
                ("filename", "width", "height", "label", "x1", "y1", "x2", "y2"),
            )
        ),
        error(r"labels\.csv:2: the annotation says the image is 48x64 \(WxH\) but .*img00\.jpg is 64x48"),
    ),
    # --- 17: a class seen only in the test (or validation) split, named before training
    (
        "17 a class only in the test split: the check names it",
        "D",
        _check(lambda t: only_in(t, "test")),
        checked(
            lambda report, warnings: (
                one(
                    warnings,
                    r"no training image of class 'pedestrian' \(\d+ in test\); the model cannot learn it.*"
                    r"\(--class-map pedestrian=\)",
                ),
                any("no training image of class 'pedestrian'" in n for n in report["notes"])
                or pytest.fail(str(report)),
            )
        ),
    ),
    (
        "17 a class only in the test split: train names it and trains",
        "T",
        lambda t: bad.train_argv(only_in(t / "data", "test"), t / "run", *QUICK),
        trained(lambda warnings: one(warnings, r"yolo:.*: no training image of class 'pedestrian' \(\d+ in test\)")),
    ),
    (
        "17 a class only in the validation split",
        "D",
        _check(lambda t: only_in(t, "val")),
        checked(
            lambda report, warnings: one(warnings, r"no training image of class 'pedestrian' \(\d+ in validation\)")
        ),
    ),
    (
        "17 a class given with --classes that the data never has",
        "D",
        _check(lambda t: bad.csv_source(t), "--classes", "car,pedestrian,bus"),
        checked(
            lambda report, warnings: one(
                warnings, r"no training image of class 'bus' \(no image at all\).*\(--classes\)"
            )
        ),
    ),
    # --- 22: --multi-object drop names the image
    (
        "22 --multi-object drop names the image and its objects",
        "D",
        _check(lambda t: two_objects(t), "--multi-object", "drop"),
        checked(
            lambda report, warnings: (
                report["problems"]
                == [
                    [
                        "labels.csv:2",
                        "labels.csv:2: image img00.jpg has 2 objects (labels.csv:2, labels.csv:14): left out "
                        "(multi_object='drop')",
                    ]
                ]
                or pytest.fail(str(report["problems"])),
                one(warnings, r"skipped 1 entry: labels\.csv:2: image img00\.jpg has 2 objects"),
            )
        ),
    ),
    # --- 23: data.yaml with train: and val: the same folder
    (
        "23 YOLO train: and val: the same folder",
        "D",
        _check(lambda t: yolo_yaml(t, YAML.format(train="images/train", val="images/train", test="images/test"))),
        checked(
            lambda report, warnings: (
                _counts(report, 8, {"train": 3, "validation": 3, "test": 2}),
                one(warnings, r"3 validation images are also in train .*validation figures will be optimistic"),
            )
        ),
    ),
    (
        "23 YOLO train: and val: the same folder trains",
        "T",
        lambda t: bad.train_argv(
            yolo_yaml(t / "data", YAML.format(train="images/train", val="images/train", test="images/test")),
            t / "run",
            *QUICK,
        ),
        trained(lambda warnings: one(warnings, r"validation figures will be optimistic")),
    ),
    (
        "23 YOLO one folder twice in one split is still refused",
        "D",
        _check(
            lambda t: yolo_yaml(
                t, YAML.format(train="[images/train, images/train]", val="images/val", test="images/test")
            )
        ),
        error(r"labels/train/img00\.txt: image .*img00\.jpg is listed twice \(also at labels/train/img00\.txt\)"),
    ),
    # --- 24: COCO file_names that leave the data folder
    (
        "24 COCO file_name with ../ or an absolute path: read, and said",
        "D",
        _check(outside_names),
        checked(
            lambda report, warnings: (
                _counts(report, 10),
                one(
                    warnings,
                    r"coco:.*inst\.json: 2 image file_names leave the data folder .*images\[8\] '\.\./outside/o1\.jpg'",
                ),
            )
        ),
    ),
]


@pytest.mark.parametrize("case,letter,build,expect", ROWS, ids=[row[0] for row in ROWS])
def test_case(case, letter, build, expect, tmp_path, capfd, caplog, monkeypatch):
    monkeypatch.delenv("LOCNET_TF_TRACEBACK", raising=False)
    monkeypatch.setattr("locnet_tf.data.readers.entries._WARNED", set())  # each row says its own warnings
    argv = build(tmp_path)
    capfd.readouterr()
    with caplog.at_level(logging.WARNING, logger="locnet_tf.data"):
        code = bad.run_command(letter, argv)
    _, err = capfd.readouterr()
    expect(code, err, tmp_path, caplog)


# ----------------------------------------------------------------------------
# The results themselves.


def _boxes(spec, **kwargs):
    data = load_source(spec, **kwargs)
    return {
        pathlib.Path(r.path).name: (r.class_id, tuple(np.round(r.box, 5))) for s in data.records.values() for r in s
    }


@pytest.mark.parametrize(
    "header, order",
    [
        ("filename,ymin,xmin,ymax,xmax,label", ("filename", "y1", "x1", "y2", "x2", "label")),
        ("image,xmin,ymin,xmax,ymax,class", ("filename", "x1", "y1", "x2", "y2", "label")),
        ("Label,Left,Top,Right,Bottom,Image_Path", ("label", "x1", "y1", "x2", "y2", "filename")),
        (
            "filename,width,height,class,xmin,ymin,xmax,ymax",
            ("filename", "width", "height", "label", "x1", "y1", "x2", "y2"),
        ),
    ],
)
def test_a_csv_header_is_honoured_not_transposed(tmp_path, header, order):
    plain = csv_with_header(
        tmp_path / "plain", "filename,x1,y1,x2,y2,label", ("filename", "x1", "y1", "x2", "y2", "label")
    )
    named = csv_with_header(tmp_path / "named", header, order)
    expected = _boxes(plain)
    assert len(expected) == 12 and _boxes(named) == expected


def test_duplicate_coco_image_ids_are_refused_with_skip_bad_both_left_out(tmp_path):
    spec = coco_source(tmp_path, [(1, "a.jpg"), (2, "b.jpg"), (1, "c.jpg")], [(1, 1), (2, 2)])
    with pytest.raises(DataError, match=r"image id 1 is used twice, for 'a\.jpg' .* and 'c\.jpg'"):
        load_source(spec)
    data = load_source(spec, skip_bad=True, splits=(1, 0, 0))
    assert [pathlib.Path(r.path).name for r in data.records["train"]] == ["b.jpg"]


def test_a_symlinked_yolo_folder_is_followed_and_read_right(tmp_path):
    spec = yolo_folder_with_links(tmp_path, loop=True)
    data = load_source(spec)
    records = [r for s in data.records.values() for r in s]
    names = sorted(pathlib.Path(r.path).name for r in records)
    assert names == [f"img{i:02d}.jpg" for i in range(10)]  # each once, loops or not
    linked = [r for r in records if "/more/" in r.path]
    assert len(linked) == 4 and all(r.present for r in linked)
    assert [r.class_id for r in sorted(linked, key=lambda r: r.path)] == [0, 1, 0, 1]  # their own label files


def test_train_equals_val_puts_each_image_in_both_splits(tmp_path):
    spec = yolo_yaml(tmp_path, YAML.format(train="images/train", val="images/train", test="images/test"))
    data = load_source(spec)
    train, val = data.records["train"], data.records["validation"]
    assert [r.path for r in train] == [r.path for r in val] and len(train) == 3
    assert [r.class_id for r in train] == [r.class_id for r in val]


def test_coco_names_outside_the_folder_are_read_from_where_they_point(tmp_path):
    spec = outside_names(tmp_path)
    data = load_source(spec)
    paths = {r.path for s in data.records.values() for r in s}
    assert str(tmp_path / "outside" / "o1.jpg") in {os.path.normpath(p) for p in paths}
    assert str(tmp_path / "far" / "o2.jpg") in paths
    assert any("leave the data folder" in note for note in data.notes)
    # Names that stay inside say nothing.
    assert not any("leave" in n for n in load_source(twelve_coco(tmp_path / "plain")).notes)


def test_coco_official_layout_splits_the_same_from_any_working_folder(tmp_path, monkeypatch):
    # annotations/instances.json + val2017/: the images sit beside annotations/, and their split must
    # not depend on how the JSON was named (absolute, or relative to the working folder).
    root = tmp_path / "coco"
    images = [(i + 1, f"val2017/c{i:02d}.jpg", root / "val2017" / f"c{i:02d}.jpg") for i in range(12)]
    spec = coco_source(root, images, [(i + 1, 1 + i % 2) for i in range(12)], json_name="annotations/instances.json")

    def splits():
        data = load_source(spec)
        return {pathlib.Path(r.path).name: s for s, rows in data.records.items() for r in rows}

    absolute = splits()
    monkeypatch.chdir(tmp_path)
    spec = "coco:coco/annotations/instances.json"
    assert splits() == absolute
    monkeypatch.chdir(root / "val2017")
    spec = "coco:../annotations/instances.json"
    assert splits() == absolute
    assert not any("leave" in n for n in load_source(spec).notes)
