"""Data sources: every format from tiny generated fixtures, the policies, bad data, caltech."""

import collections
import json
import logging
import pathlib
import random

import numpy as np
import pytest
from PIL import Image

from locnet_tf.data.readers import yolo
from locnet_tf.data import checks as checks_lib
from locnet_tf.data import splits as splits_lib
from locnet_tf.data import sources
from locnet_tf.core.errors import DataError
from locnet_tf.core.records import Record, SourceData
from locnet_tf.data.sources import load_source


def make_image(path, width=100, height=50, mode="RGB", fmt=None):
    """Writes a tiny image; returns its path."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    color = 128 if mode == "L" else (200, 30, 30)
    Image.new(mode, (width, height), color).save(path, format=fmt)
    return path


def write(path, text):
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def all_records(data):
    return [r for split in ("train", "validation", "test") for r in data.records[split]]


def by_name(data):
    return {pathlib.Path(r.path).name: r for r in all_records(data)}


# ----------------------------------------------------------------------------
# CSV


@pytest.fixture
def csv_dir(tmp_path):
    make_image(tmp_path / "images" / "a.jpg", 100, 50)
    make_image(tmp_path / "images" / "b.png", 200, 100)
    make_image(tmp_path / "images" / "bg.jpg", 80, 60, mode="L")
    write(
        tmp_path / "labels.csv",
        "filename,x1,y1,x2,y2,label\n"
        "a.jpg,10,5,60,45,car\n"  # line 2
        "b.png,0,0,20,10,pedestrian\n"  # line 3: small
        "b.png,100,20,180,100,car\n"  # line 4: large
        "bg.jpg,,,,,\n",  # line 5: background
    )
    return tmp_path


def test_csv_reads_boxes_background_and_classes(csv_dir):
    data = load_source(f"csv:{csv_dir / 'labels.csv'}")
    assert isinstance(data, SourceData)
    assert data.class_names == ("car", "pedestrian")  # sorted labels
    assert set(data.records) == {"train", "validation", "test"}
    records = by_name(data)
    assert len(records) == 3
    a = records["a.jpg"]
    assert isinstance(a, Record) and a.present and a.class_id == 0
    # x 10..60 of 100 -> cx = 35/100, w = 50/100; y 5..45 of 50 -> cy = 25/50, h = 40/50.
    np.testing.assert_allclose(a.box, [0.35, 0.5, 0.8, 0.5], atol=1e-6)
    assert a.origin == "labels.csv:2"
    assert pathlib.Path(a.path).is_absolute()
    # Largest of two: 80x80 car beats 20x10 pedestrian. x 100..180 of 200, y 20..100 of 100.
    b = records["b.png"]
    assert b.class_id == 0
    np.testing.assert_allclose(b.box, [0.7, 0.6, 0.8, 0.4], atol=1e-6)
    # The other object stays with the record, for evaluation only: the pedestrian at x 0..20, y 0..10.
    [(other_class, other_box)] = b.others
    assert other_class == 1
    np.testing.assert_allclose(other_box, [0.05, 0.05, 0.1, 0.1], atol=1e-6)
    assert a.others == () and records["bg.jpg"].others == ()
    # Said, not silent: which images train on one of their objects.
    [note] = [n for n in data.notes if "several labelled objects" in n]
    assert note.startswith(f"csv:{csv_dir / 'labels.csv'}: 1 of 3 images hold several labelled objects")
    bg = records["bg.jpg"]
    assert not bg.present and bg.class_id == 0
    np.testing.assert_array_equal(bg.box, np.zeros(4))


def test_csv_multi_object_policies(csv_dir):
    spec = f"csv:{csv_dir / 'labels.csv'}"
    dropped = load_source(spec, multi_object="drop")
    assert "b.png" not in by_name(dropped)
    assert len(dropped.skipped) == 1
    origin, reason = dropped.skipped[0]
    assert origin == "labels.csv:3" and "2 objects" in reason
    with pytest.raises(DataError, match=r"labels\.csv:3.*b\.png has 2 objects"):
        load_source(spec, multi_object="fail")
    # "fail" is the user's policy, not bad data: skip_bad does not swallow it.
    with pytest.raises(DataError, match="2 objects"):
        load_source(spec, multi_object="fail", skip_bad=True)
    with pytest.raises(ValueError, match="multi_object"):
        load_source(spec, multi_object="smallest")


def test_csv_class_map_and_user_classes(csv_dir):
    spec = f"csv:{csv_dir / 'labels.csv'}"
    merged = load_source(spec, class_map={"pedestrian": "car"})
    assert merged.class_names == ("car",)
    # Mapping a label to None ignores those objects; b.png keeps only its car.
    renamed = load_source(spec, class_map={"car": None})
    assert renamed.class_names == ("pedestrian",)
    assert by_name(renamed)["b.png"].others == ()  # an ignored object is no other object either
    assert not [n for n in renamed.notes if "several" in n]
    records = by_name(renamed)
    assert not records["a.jpg"].present  # its only object was ignored: background
    assert records["b.png"].present and records["b.png"].class_id == 0
    np.testing.assert_allclose(records["b.png"].box, [0.05, 0.05, 0.1, 0.1], atol=1e-6)
    # User-given classes: order kept; an unknown label is an error naming the line.
    with pytest.raises(DataError, match=r"labels\.csv:3: unknown label 'pedestrian'"):
        load_source(spec, class_names=["motorcycle", "car"])
    kept = load_source(spec, class_names=["motorcycle", "car"], unknown="ignore_object")
    assert kept.class_names == ("motorcycle", "car")
    assert by_name(kept)["a.jpg"].class_id == 1


def test_csv_folder_with_per_class_files(tmp_path):
    # The caltech layout: annotations/<class>.csv, filenames relative to images/<class>/.
    make_image(tmp_path / "images" / "car" / "0001.jpg", 60, 40)
    make_image(tmp_path / "images" / "dog" / "0001.jpg", 60, 40, mode="L")
    write(tmp_path / "annotations" / "car.csv", "0001.jpg,1,2,30,20,car\n")
    write(tmp_path / "annotations" / "dog.csv", "0001.jpg,5,5,50,35,dog\n")
    data = load_source(f"csv:{tmp_path}")
    records = all_records(data)
    assert data.class_names == ("car", "dog")
    assert sorted(r.origin for r in records) == ["annotations/car.csv:1", "annotations/dog.csv:1"]
    assert {pathlib.Path(r.path).parent.name for r in records} == {"car", "dog"}


def test_csv_box_slightly_past_edge_is_clipped(tmp_path):
    make_image(tmp_path / "a.jpg", 100, 100)
    write(tmp_path / "l.csv", "a.jpg,50,50,101,100,car\n")  # 1 % past the right edge
    record = all_records(load_source(f"csv:{tmp_path / 'l.csv'}"))[0]
    # Clipped to x 50..100: cx = 0.75, w = 0.5; y 50..100: cy = 0.75, h = 0.5.
    np.testing.assert_allclose(record.box, [0.75, 0.75, 0.5, 0.5], atol=1e-6)
    write(tmp_path / "l.csv", "a.jpg,50,50,110,100,car\n")  # 10 % past: an error
    with pytest.raises(DataError, match=r"l\.csv:1.*outside the image"):
        load_source(f"csv:{tmp_path / 'l.csv'}")


BAD_CSV_ROWS = {
    "missing image": ("nothere.jpg,1,1,10,10,car", "not found"),
    "outside": ("ok.jpg,10,10,300,40,car", "outside the image"),
    "zero size": ("ok.jpg,10,10,10,40,car", "zero size"),
    "swapped": ("ok.jpg,50,10,10,40,car", "swapped"),
    "too few fields": ("ok.jpg,1,1,10,car", "malformed row"),
    "not numbers": ("ok.jpg,a,b,c,d,car", "malformed row"),
    "box without label": ("ok.jpg,1,1,10,10,", "a box without a label"),
    "label without box": ("ok.jpg,1,,,,car", "without a full box"),
    "empty image": ("empty.jpg,1,1,10,10,car", "empty"),
    "not an image": ("text.jpg,1,1,10,10,car", "not a JPEG, PNG, GIF or BMP image"),
}


@pytest.mark.parametrize("case", sorted(BAD_CSV_ROWS))
def test_csv_bad_data_is_an_error_naming_file_and_line(tmp_path, case):
    row, message = BAD_CSV_ROWS[case]
    make_image(tmp_path / "ok.jpg", 100, 50)
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("this is not a JPEG")
    write(tmp_path / "boxes.csv", f"ok.jpg,1,1,20,20,car\n{row}\n")
    with pytest.raises(DataError, match=message) as info:
        load_source(f"csv:{tmp_path / 'boxes.csv'}")
    assert "boxes.csv:2" in str(info.value)
    if case == "missing image":  # where it looked, as whole paths (not relative to the CSV's folder)
        assert f"looked for as {tmp_path / 'nothere.jpg'}, {tmp_path / 'images' / 'car' / 'nothere.jpg'}" in str(
            info.value
        )


def test_skip_bad_records_and_logs_the_skipped(tmp_path, caplog):
    make_image(tmp_path / "ok.jpg", 100, 50)
    make_image(tmp_path / "ok2.jpg", 100, 50)
    rows = ["ok.jpg,1,1,20,20,car", "nothere.jpg,1,1,10,10,car", "ok2.jpg,10,10,10,40,car", "ok.jpg,a,b,c,d,car"]
    write(tmp_path / "boxes.csv", "\n".join(rows) + "\n")
    with caplog.at_level(logging.WARNING, logger="locnet_tf.data"):
        data = load_source(f"csv:{tmp_path / 'boxes.csv'}", skip_bad=True)
    # ok.jpg's second row is malformed: keeping ok.jpg with only its first box
    # could mislabel it, so the whole image goes, and says why.
    assert all_records(data) == []
    skipped = dict(data.skipped)
    assert sorted(skipped) == ["boxes.csv:1", "boxes.csv:2", "boxes.csv:3", "boxes.csv:4"]
    assert "not found" in skipped["boxes.csv:2"] and "zero size" in skipped["boxes.csv:3"]
    assert skipped["boxes.csv:4"].startswith("boxes.csv:4: malformed row")
    assert "image left out" in skipped["boxes.csv:1"] and "boxes.csv:4" in skipped["boxes.csv:1"]
    assert "skipped 4 entries" in caplog.text and "boxes.csv:2" in caplog.text


def test_verify_images_finds_truncated_and_corrupt_files(tmp_path):
    image = make_image(tmp_path / "t.jpg", 64, 64)
    # Random pixels so the JPEG body is large, then cut it in half.
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(image)
    data = image.read_bytes()
    image.write_bytes(data[: len(data) // 2])
    write(tmp_path / "l.csv", "t.jpg,1,1,20,20,car\n")
    for verify in (False, True):  # the file's end is read either way
        with pytest.raises(DataError, match=r"l\.csv:1: image file .*t\.jpg: JPEG image is truncated"):
            load_source(f"csv:{tmp_path / 'l.csv'}", verify_images=verify)
    # Bytes flipped in the middle: complete, but libjpeg only "recovers" it.
    corrupt = bytearray(data)
    corrupt[len(data) // 2 : len(data) // 2 + 16] = bytes(
        b ^ 0x55 for b in corrupt[len(data) // 2 : len(data) // 2 + 16]
    )
    image.write_bytes(bytes(corrupt))
    assert len(all_records(load_source(f"csv:{tmp_path / 'l.csv'}", verify_images=False))) == 1  # header only
    with pytest.raises(DataError, match=r"l\.csv:1: image file .*t\.jpg: JPEG data is corrupt: Corrupt JPEG data"):
        load_source(f"csv:{tmp_path / 'l.csv'}")  # verifying is the default


def test_hash_splits_are_stable_and_proportional():
    names = [f"images/x/{i:05d}.jpg" for i in range(3000)]
    first = [splits_lib.hash_split(n, (0.8, 0.1, 0.1)) for n in names]
    assert first == [splits_lib.hash_split(n, (0.8, 0.1, 0.1)) for n in names]
    counts = {s: first.count(s) for s in splits_lib.SPLITS}
    assert abs(counts["train"] / 3000 - 0.8) < 0.03
    assert abs(counts["validation"] / 3000 - 0.1) < 0.02
    assert abs(counts["test"] / 3000 - 0.1) < 0.02
    other_seed = [splits_lib.hash_split(n, (0.8, 0.1, 0.1), seed=1) for n in names]
    assert other_seed != first
    assert set(splits_lib.hash_split(n, (1.0, 0.0, 0.0)) for n in names) == {"train"}
    with pytest.raises(ValueError, match="summing to 1"):
        load_source("csv:nowhere.csv", splits=(0.5, 0.1, 0.1))


def test_csv_splits_do_not_depend_on_row_order(tmp_path):
    rows = []
    for i in range(40):
        make_image(tmp_path / "images" / f"{i}.png", 16, 16)
        rows.append(f"{i}.png,1,1,8,8,car")
    write(tmp_path / "a.csv", "\n".join(rows) + "\n")
    random.Random(0).shuffle(rows)
    write(tmp_path / "b.csv", "\n".join(rows) + "\n")

    def assignment(csv_name):
        data = load_source(f"csv:{tmp_path / csv_name}")
        return {pathlib.Path(r.path).name: s for s, recs in data.records.items() for r in recs}

    first = assignment("a.csv")
    assert first == assignment("b.csv")
    assert len(set(first.values())) > 1


# ----------------------------------------------------------------------------
# Pascal VOC


def voc_xml(filename, objects, width=100, height=50):
    parts = [f"<annotation><filename>{filename}</filename>"]
    parts.append(f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>")
    for name, (x1, y1, x2, y2) in objects:
        parts.append(
            f"<object><name>{name}</name><difficult>0</difficult><bndbox><xmin>{x1}</xmin>"
            f"<ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
        )
    return "".join(parts) + "</annotation>"


@pytest.fixture
def voc_dir(tmp_path):
    for stem in ("0001", "0002", "0003"):
        make_image(tmp_path / "JPEGImages" / f"{stem}.jpg", 100, 50)
    write(tmp_path / "Annotations" / "0001.xml", voc_xml("0001.jpg", [("person", (11, 6, 61, 46))]))
    write(
        tmp_path / "Annotations" / "0002.xml",
        voc_xml("0002.jpg", [("motorbike", (1, 1, 21, 11)), ("person", (51, 1, 101, 51))]),
    )
    write(tmp_path / "Annotations" / "0003.xml", voc_xml("0003.jpg", []))
    return tmp_path


def test_voc_reads_objects_background_and_maps_classes(voc_dir):
    data = load_source(f"voc:{voc_dir}")
    assert data.class_names == ("motorbike", "person")
    records = by_name(data)
    # 1-based VOC corners: 11..61 -> 10..60 of 100 and 6..46 -> 5..45 of 50.
    np.testing.assert_allclose(records["0001.jpg"].box, [0.35, 0.5, 0.8, 0.5], atol=1e-6)
    assert records["0001.jpg"].origin == "Annotations/0001.xml"
    assert records["0002.jpg"].class_id == 1  # the larger person
    assert not records["0003.jpg"].present
    mapped = load_source(
        f"voc:{voc_dir}",
        class_names=["pedestrian", "car", "motorcycle"],
        class_map={"person": "pedestrian", "motorbike": "motorcycle"},
    )
    assert mapped.class_names == ("pedestrian", "car", "motorcycle")
    assert by_name(mapped)["0001.jpg"].class_id == 0
    smallest_only = load_source(f"voc:{voc_dir}", class_map={"person": None})
    assert by_name(smallest_only)["0002.jpg"].class_id == 0
    with pytest.raises(DataError, match=r"Annotations/0002\.xml.*2 objects"):
        load_source(f"voc:{voc_dir}", multi_object="fail")


def test_voc_uses_imagesets_splits(voc_dir):
    write(voc_dir / "ImageSets" / "Main" / "train.txt", "0001\n0003\n")
    write(voc_dir / "ImageSets" / "Main" / "val.txt", "0002\n")
    data = load_source(f"voc:{voc_dir}")
    assert sorted(pathlib.Path(r.path).name for r in data.records["train"]) == ["0001.jpg", "0003.jpg"]
    assert [pathlib.Path(r.path).name for r in data.records["validation"]] == ["0002.jpg"]
    assert data.records["test"] == []


@pytest.mark.parametrize(
    "xml, message",
    [
        ("<annotation><filename>0001.jpg</filename>", "malformed XML"),
        (
            voc_xml("0001.jpg", [("cat", (1, 1, 20, 20))]).replace("<xmax>20</xmax>", ""),
            r"object 1 <bndbox>: <xmax> is missing",
        ),
        (voc_xml("0001.jpg", [("cat", (1, 1, 20, "x"))]), "not a number"),
        (voc_xml("0001.jpg", [("cat", (1, 1, 20, 20)), ("cat", (5, 5, 5, 20))]), r"object 2: box has zero size"),
        (voc_xml("gone.jpg", [("cat", (1, 1, 20, 20))]), "not found"),
    ],
)
def test_voc_bad_data(tmp_path, xml, message):
    make_image(tmp_path / "JPEGImages" / "0001.jpg", 100, 50)
    write(tmp_path / "Annotations" / "0001.xml", xml)
    with pytest.raises(DataError, match=message) as info:
        load_source(f"voc:{tmp_path}")
    assert "Annotations/0001.xml" in str(info.value)


# ----------------------------------------------------------------------------
# COCO


def coco_json(path, images, annotations, categories=((1, "person"), (3, "car"))):
    return write(
        path,
        json.dumps(
            {
                "images": [{"id": i, "file_name": f, "width": w, "height": h} for i, f, w, h in images],
                "annotations": [
                    {"id": k, "image_id": i, "category_id": c, "bbox": list(b), "iscrowd": 0}
                    for k, (i, c, b) in enumerate(annotations)
                ],
                "categories": [{"id": i, "name": n} for i, n in categories],
            }
        ),
    )


def test_coco_reads_categories_background_and_image_folder(tmp_path):
    make_image(tmp_path / "images" / "a.jpg", 100, 50)
    make_image(tmp_path / "images" / "b.jpg", 100, 50)
    path = coco_json(
        tmp_path / "instances.json",
        [(7, "a.jpg", 100, 50), (8, "b.jpg", 100, 50)],
        [(7, 3, (10, 5, 50, 40)), (7, 1, (0, 0, 5, 5))],
    )
    data = load_source(f"coco:{path}")
    assert data.class_names == ("person", "car")  # category-id order
    records = by_name(data)
    # x 10..60 of 100, y 5..45 of 50, as for the CSV test.
    np.testing.assert_allclose(records["a.jpg"].box, [0.35, 0.5, 0.8, 0.5], atol=1e-6)
    assert records["a.jpg"].class_id == 1
    assert records["a.jpg"].origin == "instances.json image a.jpg"
    assert not records["b.jpg"].present
    merged = load_source(f"coco:{path}", class_map={"person": "car"})
    assert merged.class_names == ("car",)


@pytest.mark.parametrize(
    "images, annotations, message",
    [
        ([(1, "a.jpg", 100, 50)], [(1, 9, (1, 1, 5, 5))], r"annotations\[0\]: category_id 9"),
        ([(1, "a.jpg", 100, 50)], [(2, 1, (1, 1, 5, 5))], r"annotations\[0\]: image_id 2"),
        ([(1, "a.jpg", 100, 50)], [(1, 1, (1, 1, 5))], r"annotations\[0\]: 'bbox' must be 4 numbers"),
        ([(1, "a.jpg", 100, 50)], [(1, 1, (90, 1, 50, 5))], r"annotations\[0\] \(image a\.jpg\).*outside"),
        ([(1, "a.jpg", 100, 50)], [(1, 1, (10, 1, 0, 5))], "zero size"),
        ([(1, "zz.jpg", 100, 50)], [], r"image zz\.jpg: image file not found"),
    ],
)
def test_coco_bad_data(tmp_path, images, annotations, message):
    make_image(tmp_path / "a.jpg", 100, 50)
    path = coco_json(tmp_path / "inst.json", images, annotations)
    with pytest.raises(DataError, match=message) as info:
        load_source(f"coco:{path}")
    assert "inst.json" in str(info.value)


def test_coco_skipped_annotation_takes_its_image_along(tmp_path):
    make_image(tmp_path / "a.jpg", 100, 50)
    make_image(tmp_path / "b.jpg", 100, 50)
    # a.jpg's only car has a malformed bbox: with skip_bad it must not become background.
    path = coco_json(
        tmp_path / "inst.json",
        [(1, "a.jpg", 100, 50), (2, "b.jpg", 100, 50)],
        [(1, 3, (10, 10, "wide", 20)), (2, 3, (10, 10, 30, 20))],
    )
    data = load_source(f"coco:{path}", skip_bad=True)
    assert [pathlib.Path(r.path).name for r in all_records(data)] == ["b.jpg"]
    assert all(r.present for r in all_records(data))
    reasons = [reason for _, reason in data.skipped]
    assert any("bbox" in r for r in reasons) and any("image left out" in r and "a.jpg" in r for r in reasons)


def test_coco_malformed_json(tmp_path):
    write(tmp_path / "x.json", "{not json")
    with pytest.raises(DataError, match=r"x\.json: malformed JSON"):
        load_source(f"coco:{tmp_path / 'x.json'}")
    write(tmp_path / "x.json", json.dumps({"images": []}))
    with pytest.raises(DataError, match=r"x\.json: .*'annotations' list"):
        load_source(f"coco:{tmp_path / 'x.json'}")


# ----------------------------------------------------------------------------
# YOLO


def test_yolo_data_yaml_with_splits_names_and_background(tmp_path):
    make_image(tmp_path / "images" / "train" / "a.jpg", 100, 50)
    make_image(tmp_path / "images" / "train" / "bg.jpg", 100, 50)
    make_image(tmp_path / "images" / "val" / "c.png", 40, 40)
    write(tmp_path / "labels" / "train" / "a.txt", "1 0.35 0.5 0.5 0.8\n0 0.1 0.1 0.05 0.05\n")
    write(tmp_path / "labels" / "train" / "bg.txt", "")
    write(tmp_path / "labels" / "val" / "c.txt", "0 0.5 0.5 0.5 0.25\n")
    write(
        tmp_path / "data.yaml",
        "# a comment\npath: .\ntrain: images/train\nval: images/val  # validation\ntest:\n"
        "names:\n  0: person\n  1: car\n",
    )
    data = load_source(f"yolo:{tmp_path / 'data.yaml'}")
    assert data.class_names == ("person", "car")
    assert sorted(pathlib.Path(r.path).name for r in data.records["train"]) == ["a.jpg", "bg.jpg"]
    assert data.records["test"] == []
    records = by_name(data)
    # YOLO line "cx cy w h" -> target "cx cy h w".
    np.testing.assert_allclose(records["a.jpg"].box, [0.35, 0.5, 0.8, 0.5], atol=1e-6)
    assert records["a.jpg"].class_id == 1 and records["a.jpg"].origin == "labels/train/a.txt"
    np.testing.assert_allclose(records["c.png"].box, [0.5, 0.5, 0.25, 0.5], atol=1e-6)
    assert not records["bg.jpg"].present
    # The same folder without naming the YAML finds it.
    assert load_source(f"yolo:{tmp_path}").class_names == ("person", "car")


def test_yolo_folder_without_yaml(tmp_path):
    for i in range(6):
        make_image(tmp_path / "images" / f"{i}.jpg", 32, 32)
        write(tmp_path / "labels" / f"{i}.txt", f"{i % 2} 0.5 0.5 0.5 0.5\n")
    data = load_source(f"yolo:{tmp_path}")
    assert data.class_names == ("0", "1")
    assert sum(len(v) for v in data.records.values()) == 6
    write(tmp_path / "classes.txt", "cat\ndog\n")
    assert load_source(f"yolo:{tmp_path}", class_map={"dog": "cat"}).class_names == ("cat",)


@pytest.mark.parametrize(
    "line, message",
    [
        ("0 0.5 0.5 0.2", "malformed line"),
        ("0 0.1 0.1 0.2 0.2 0.3 0.3", "polygons are not supported"),
        ("x 0.5 0.5 0.2 0.2", "not numbers"),
        ("5 0.5 0.5 0.2 0.2", "class id 5 is out of range"),
        ("0 0.95 0.5 0.3 0.2", "outside the image"),
        ("0 0.5 0.5 0 0.2", "zero size"),
        ("0 50 20 10 10", "look like pixels"),
    ],
)
def test_yolo_bad_lines(tmp_path, line, message):
    make_image(tmp_path / "images" / "a.jpg", 32, 32)
    write(tmp_path / "labels" / "a.txt", f"1 0.5 0.5 0.2 0.2\n{line}\n")
    write(tmp_path / "classes.txt", "p\nq\n")
    with pytest.raises(DataError, match=message) as info:
        load_source(f"yolo:{tmp_path}")
    assert "labels/a.txt:2" in str(info.value)


@pytest.mark.parametrize(
    "text, names",
    [
        ("names: [person, 'car', \"motor, bike\"]\nnc: 3", ["person", "car", "motor, bike"]),
        ("names:\n  - person\n  - car  # comment\n", ["person", "car"]),
        ("names:\n  0: person\n  1: 'car'\n", {0: "person", 1: "car"}),
    ],
)
def test_data_yaml_names(tmp_path, text, names):
    (tmp_path / "data.yaml").write_text(text)
    assert yolo.read_yaml(tmp_path / "data.yaml")["names"] == names
    assert (
        yolo._names_list(yolo.read_yaml(tmp_path / "data.yaml")["names"], "x")
        == ["person", "car", "motor, bike"][: len(names)]
    )


@pytest.mark.parametrize("text", ["names: [a\n", "- a\n- b\n"])
def test_data_yaml_malformed_is_named(tmp_path, text):
    (tmp_path / "data.yaml").write_text(text)
    with pytest.raises(DataError, match="data.yaml"):
        yolo.read_yaml(tmp_path / "data.yaml")


# ----------------------------------------------------------------------------
# Specs


def test_spec_parsing_and_class_map_text():
    assert sources.parse_spec("csv:a/b.csv") == ("csv", "a/b.csv")
    assert sources.parse_spec("tfds:voc/2007") == ("tfds", "voc/2007")
    assert sources.parse_spec("synthetic") == ("synthetic", "")
    with pytest.raises(ValueError, match="Unknown data spec"):
        sources.parse_spec("parquet:x")
    with pytest.raises(ValueError, match="not a file source"):
        load_source("tfds:voc/2007")
    assert sources.parse_class_map("person=pedestrian, motorbike=motorcycle,cat=") == {
        "person": "pedestrian",
        "motorbike": "motorcycle",
        "cat": None,
    }
    with pytest.raises(ValueError, match="old=new"):
        sources.parse_class_map("person")


# ----------------------------------------------------------------------------
# The real photos


def test_caltech_loads_as_shipped(caltech_dir):
    spec = f"csv:{caltech_dir}"
    # One shipped annotation has a zero-height box: bad data, named precisely.
    with pytest.raises(DataError, match=r"annotations/airplane\.csv:118: box has zero size"):
        load_source(spec)
    data = load_source(spec, skip_bad=True)
    assert data.class_names == ("airplane", "face", "motorcycle")
    assert [origin for origin, _ in data.skipped] == ["annotations/airplane.csv:118"]
    records = all_records(data)
    counts = np.bincount([r.class_id for r in records], minlength=3)
    # README: 800 airplanes (one skipped), 435 faces, 798 motorcycles.
    assert counts.tolist() == [799, 435, 798]
    assert all(r.present for r in records)
    sizes = {s: len(v) / len(records) for s, v in data.records.items()}
    assert 0.75 < sizes["train"] < 0.85 and 0.07 < sizes["test"] < 0.13
    boxes = np.stack([r.box for r in records])
    assert boxes.min() >= 0 and boxes.max() <= 1 and (boxes[:, 2:] > 0).all()
    # Grayscale JPEGs are among the records (the pipeline decodes them to RGB).
    modes = {Image.open(r.path).mode for r in records}
    assert "L" in modes


# ----------------------------------------------------------------------------
# TFDS catalog datasets, offline through tfds.testing.mock_data


def _voc_like_examples(self, split, **kwargs):
    """Hand-made voc/2007 examples (label ids: 13 motorbike, 14 person, 7 cat)."""
    import tensorflow as tf

    def generate():
        def example(filename, bboxes, labels):
            return {
                "image": np.zeros((20, 40, 3), np.uint8),
                "image/filename": filename,
                "objects": {
                    "bbox": np.array(bboxes, np.float32).reshape(-1, 4),
                    "label": np.array(labels, np.int64),
                },
            }

        # A small person and a large motorbike (yxyx): the motorbike wins.
        yield example("a.jpg", [[0.1, 0.1, 0.2, 0.2], [0.2, 0.25, 0.8, 0.75]], [14, 13])
        yield example("b.jpg", [[0.1, 0.1, 0.9, 0.9]], [7])  # only a cat
        yield example("c.jpg", [], [])  # no object at all
        yield example("d.jpg", [[0.0, 0.5, 1.0, 1.0]], [14])

    signature = {
        "image": tf.TensorSpec((None, None, 3), tf.uint8),
        "image/filename": tf.TensorSpec((), tf.string),
        "objects": {"bbox": tf.TensorSpec((None, 4), tf.float32), "label": tf.TensorSpec((None,), tf.int64)},
    }
    return tf.data.Dataset.from_generator(generate, output_signature=signature)


ROAD = dict(
    class_names=["pedestrian", "car", "motorcycle"],
    class_map={"person": "pedestrian", "motorbike": "motorcycle"},
)


def test_tfds_other_objects_are_read_in_the_examples_order_and_placed_on_the_model_input():
    import tensorflow_datasets as tfds

    from locnet_tf.data import pipeline

    with tfds.testing.mock_data(as_dataset_fn=_voc_like_examples):
        options = dict(unknown="ignore_object", **ROAD)
        stretched = pipeline.tfds_other_objects("tfds:voc/2007", "train", image_size=32, **options)
        letterboxed = pipeline.tfds_other_objects(
            "tfds:voc/2007", "train", image_size=32, resize="letterbox", **options
        )
        # Only a.jpg has two objects: the person (pedestrian, 0) beside the larger motorbike.
        assert [len(o) for o in stretched] == [1, 0, 0, 0]
        [(class_id, box)] = stretched[0]
        # Person yxyx [0.1, 0.1, 0.2, 0.2]: cx = cy = 0.15, h = w = 0.1.
        assert class_id == 0
        np.testing.assert_allclose(box, [0.15, 0.15, 0.1, 0.1], atol=1e-6)
        # The 20x40 image letterboxed into 32x32 is 16 px high from row 8: y = (0.15 * 16 + 8) / 32.
        np.testing.assert_allclose(letterboxed[0][0][1], [0.15, 0.325, 0.05, 0.1], atol=1e-6)
        # "drop" leaves a.jpg out, in the examples and in the others alike.
        dropped = pipeline.tfds_other_objects("tfds:voc/2007", "train", image_size=32, multi_object="drop", **options)
        assert dropped == [[], [], []]
    assert pipeline.tfds_other_objects("synthetic", "train", image_size=32) is None


def test_tfds_voc_maps_classes_and_keeps_the_largest():
    import tensorflow_datasets as tfds

    from locnet_tf.data.readers.tfds_source import tfds_examples

    with tfds.testing.mock_data(as_dataset_fn=_voc_like_examples):
        dataset, names = tfds_examples("voc/2007", "train", unknown="ignore_object", **ROAD)
        examples = list(dataset.as_numpy_iterator())
        assert names == ("pedestrian", "car", "motorcycle")
        assert [e["present"] for e in examples] == [True, False, False, True]
        assert [int(e["class_id"]) for e in examples] == [2, 0, 0, 0]
        # Motorbike yxyx [0.2, 0.25, 0.8, 0.75]: cx = 0.5, cy = 0.5, h = 0.6, w = 0.5.
        np.testing.assert_allclose(examples[0]["box"], [0.5, 0.5, 0.6, 0.5], atol=1e-6)
        np.testing.assert_array_equal(examples[1]["box"], np.zeros(4))
        # Person yxyx [0, 0.5, 1, 1]: cx = 0.75, cy = 0.5, h = 1, w = 0.5.
        np.testing.assert_allclose(examples[3]["box"], [0.75, 0.5, 1.0, 0.5], atol=1e-6)
        assert examples[0]["image"].dtype == np.uint8 and examples[0]["box"].dtype == np.float32
        assert set(examples[0]) == {"image", "box", "class_id", "present"}

        dropped, _ = tfds_examples("voc/2007", "train", unknown="ignore_object", multi_object="drop", **ROAD)
        assert len(list(dropped)) == 3
        failing, _ = tfds_examples("voc/2007", "train", multi_object="fail")
        with pytest.raises(Exception, match="several objects"):
            list(failing)
        with pytest.raises(DataError, match=r"tfds:voc/2007: labels \['aeroplane'"):
            tfds_examples("voc/2007", "train", **ROAD)


@pytest.mark.parametrize("name", ["caltech_birds2011", "stanford_dogs"])
def test_tfds_random_mocks_match_a_numpy_reference(name):
    import tensorflow_datasets as tfds

    from locnet_tf.data.readers.tfds_source import tfds_examples

    with tfds.testing.mock_data(num_examples=5, policy=tfds.testing.MockPolicy.USE_CODE):
        dataset, names = tfds_examples(name, "train")
        raw = list(tfds.load(name, split="train").as_numpy_iterator())
    assert len(names) > 100
    examples = list(dataset.as_numpy_iterator())
    assert len(examples) == len(raw) == 5
    for example, source in zip(examples, raw):
        bboxes = source["bbox"].reshape(-1, 4) if "bbox" in source else source["objects"]["bbox"]
        # Mock corners are random: the mapping orders them, then keeps the largest box.
        y1, y2 = np.minimum(bboxes[:, 0], bboxes[:, 2]), np.maximum(bboxes[:, 0], bboxes[:, 2])
        x1, x2 = np.minimum(bboxes[:, 1], bboxes[:, 3]), np.maximum(bboxes[:, 1], bboxes[:, 3])
        i = int(np.argmax((y2 - y1) * (x2 - x1)))
        expected = [(x1[i] + x2[i]) / 2, (y1[i] + y2[i]) / 2, y2[i] - y1[i], x2[i] - x1[i]]
        np.testing.assert_allclose(example["box"], expected, atol=1e-6)
        assert example["present"] and example["class_id"] == source["label"]
        assert example["image"].shape == source["image"].shape


def test_formats_training_cannot_decode_are_refused_up_front(tmp_path):
    Image.new("RGB", (40, 30)).save(tmp_path / "a.jpg.tif", format="TIFF")
    write(tmp_path / "l.csv", "a.jpg.tif,1,1,20,20,car\n")
    with pytest.raises(DataError, match=r"l\.csv:1: image file .*a\.jpg\.tif: a TIFF image; locnet_tf reads only JPEG"):
        load_source(f"csv:{tmp_path / 'l.csv'}")


def test_hash_split_spreads_names_that_differ_in_a_few_characters():
    # 40 Caltech images of each of 3 classes, as a COCO file names them: with a
    # CRC32 hash every one of these went to train or test, none to validation.
    names = [f"images/{c}_image_{i:04d}.jpg" for c in ("airplane", "face", "motorcycle") for i in range(1, 41)]
    counts = collections.Counter(splits_lib.hash_split(n, (0.8, 0.1, 0.1)) for n in names)
    assert 6 <= counts["validation"] <= 20 and 6 <= counts["test"] <= 20, counts
    # and over many such families, each family's validation share stays near 10%
    for prefix in ("images/", "img/", "data/train/", ""):
        family = [f"{prefix}{c}_{i:04d}.jpg" for c in ("a", "b", "c", "d", "e") for i in range(200)]
        share = sum(splits_lib.hash_split(n, (0.8, 0.1, 0.1)) == "validation" for n in family) / len(family)
        assert abs(share - 0.1) < 0.03, (prefix, share)


def test_tfds_split_the_dataset_lacks_is_an_empty_split(monkeypatch):
    import types

    from locnet_tf.data.readers import tfds_source
    from locnet_tf.core.errors import EmptySplitError

    # A prepared dataset with train and test only (like stanford_dogs).
    builder = types.SimpleNamespace(info=types.SimpleNamespace(splits={"train": 10, "test": 5}))
    monkeypatch.setattr(tfds_source.tfds, "builder", lambda name, data_dir=None: builder)
    for split in ("validation", "val"):
        with pytest.raises(EmptySplitError, match=rf"tfds:dogs \({split}\): no such split; it has \['test', 'train'\]"):
            tfds_source.tfds_examples("dogs", split)


def test_a_skipped_row_takes_only_its_own_image_along(tmp_path):
    # Caltech's layout: every class has its own image_0001.jpg.
    for label in ("airplane", "face"):
        make_image(tmp_path / "images" / label / "image_0001.jpg", 100, 50)
        make_image(tmp_path / "images" / label / "image_0002.jpg", 100, 50)
    write(
        tmp_path / "annotations" / "airplane.csv",
        "image_0001.jpg,1,1,20,x,airplane\n"  # line 1: malformed
        "image_0001.jpg,30,10,60,40,airplane\n"  # line 2: another object of the same image
        "image_0002.jpg,1,1,20,20,airplane\n",
    )
    write(
        tmp_path / "annotations" / "face.csv",
        "image_0001.jpg,1,1,20,20,face\nimage_0002.jpg,1,1,20,20,face\nimage_0002.jpg,1,1\n",
    )  # line 3: malformed (no label: the image is found in images/face by the CSV's name)
    data = load_source(f"csv:{tmp_path}", skip_bad=True, splits=(1.0, 0.0, 0.0))
    kept = sorted(pathlib.Path(r.path).relative_to(tmp_path / "images").as_posix() for r in all_records(data))
    assert kept == ["airplane/image_0002.jpg", "face/image_0001.jpg"]
    skipped = dict(data.skipped)
    assert sorted(skipped) == [
        "annotations/airplane.csv:1",
        "annotations/airplane.csv:2",
        "annotations/face.csv:2",
        "annotations/face.csv:3",
    ]
    assert (
        "image left out" in skipped["annotations/airplane.csv:2"]
        and "airplane.csv:1" in skipped["annotations/airplane.csv:2"]
    )
    assert "image left out" in skipped["annotations/face.csv:2"] and "face.csv:3" in skipped["annotations/face.csv:2"]


def test_images_are_checked_in_threads_with_the_same_result_and_order(tmp_path, monkeypatch):
    import threading

    from locnet_tf.core import image_files as images
    from locnet_tf.data import check_cache

    monkeypatch.setenv(check_cache.CACHE_ENV, "0")  # every load checks every file
    rows = []
    for i in range(24):
        path = make_image(tmp_path / f"img{i:02d}.jpg", 64 + i, 48)
        if i % 5 == 2:  # truncated
            path.write_bytes(path.read_bytes()[:200])
        rows.append(f"{path.name},1,1,20,20,car")
    write(tmp_path / "labels.csv", "\n".join(rows) + "\n")
    used = set()
    real = images.inspect

    def inspect(*args, **kwargs):
        used.add(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(images, "inspect", inspect)
    results = {}
    for threads, smallest in (("1", 0), ("4", checks_lib.THREADED_MEAN_BYTES), ("4", 0)):
        # (These files are small: as photos are large, unless the threshold says otherwise.)
        monkeypatch.setattr(checks_lib, "THREADED_MEAN_BYTES", smallest)
        monkeypatch.setenv(checks_lib.CHECK_THREADS_ENV, threads)
        checks_lib._CHECKED.clear()
        used.clear()
        data = load_source(f"csv:{tmp_path / 'labels.csv'}", skip_bad=True, splits=(1.0, 0.0, 0.0))
        results[threads, smallest] = (
            [(r.path, r.size, r.orientation, r.file_size) for r in data.records["train"]],
            data.skipped,
        )
        assert any(name.startswith("locnet_tf-check") for name in used) == (threads == "4" and smallest == 0)
    assert results["1", 0] == results["4", 0] == results["4", checks_lib.THREADED_MEAN_BYTES]
    results["4"] = results["4", 0]
    assert [origin for origin, _ in results["4"][1]] == [
        "labels.csv:3",
        "labels.csv:8",
        "labels.csv:13",
        "labels.csv:18",
        "labels.csv:23",
    ]
    assert len(results["4"][0]) == 19
    monkeypatch.setenv(checks_lib.CHECK_THREADS_ENV, "0")
    with pytest.raises(ValueError, match="LOCNET_TF_CHECK_THREADS must be a whole number of at least 1"):
        load_source(f"csv:{tmp_path / 'labels.csv'}", skip_bad=True)


def test_checked_images_are_remembered_on_disk_until_they_change(tmp_path, monkeypatch):
    from locnet_tf.core import image_files as images
    from locnet_tf.data import check_cache

    monkeypatch.setenv(check_cache.CACHE_ENV, str(tmp_path / "cache" / "checks.sqlite3"))
    monkeypatch.setattr(check_cache, "SETTLED_SECONDS", 0.0)  # these files are brand new
    folder = tmp_path / "data"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(
            folder / f"i{i}.jpg"
        )
    write(folder / "labels.csv", "".join(f"i{i}.jpg,1,1,20,20,car\n" for i in range(3)))
    spec = f"csv:{folder / 'labels.csv'}"
    decoded = []
    real = images.inspect
    monkeypatch.setattr(
        images, "inspect", lambda data, name, verify=True: decoded.append(name) or real(data, name, verify)
    )

    def load(**kwargs):
        checks_lib._CHECKED.clear()  # as a new process
        decoded.clear()
        return load_source(spec, splits=(1.0, 0.0, 0.0), **kwargs)

    first = load()
    assert len(decoded) == 3 and (tmp_path / "cache" / "checks.sqlite3").is_file()
    again = load()
    assert decoded == [] and [(r.path, r.size, r.orientation, r.file_size) for r in again.records["train"]] == [
        (r.path, r.size, r.orientation, r.file_size) for r in first.records["train"]
    ]
    load(verify_images=False)  # a full check answers a header check too
    assert decoded == []
    # A changed file is checked again, and a bad one is never remembered.
    data = (folder / "i1.jpg").read_bytes()
    (folder / "i1.jpg").write_bytes(data[: len(data) // 2])
    for _ in range(2):
        with pytest.raises(DataError, match=r"i1\.jpg: JPEG image is truncated"):
            load()
        assert [pathlib.Path(name).name for name in decoded] == ["i1.jpg"]
    (folder / "i1.jpg").write_bytes(data)
    load()
    assert [pathlib.Path(name).name for name in decoded] == ["i1.jpg"]
    # The pixel limit applies to what is remembered.
    monkeypatch.setenv("LOCNET_TF_MAX_PIXELS", "1000")
    with pytest.raises(DataError, match=r"i0\.jpg: image is too large: 60x40 pixels"):
        load()
    monkeypatch.delenv("LOCNET_TF_MAX_PIXELS")
    # Turned off: every file is checked each time.
    monkeypatch.setenv(check_cache.CACHE_ENV, "0")
    load()
    assert len(decoded) == 3
