"""Issue 22, one row per case: every bad image, annotation, flag and fault ends in one line.

Each row builds its own broken input (fixtures generated here, in
`bad_input_data`), runs a command as `python -m` does (`cli.run` around its
`main`: D = check, T = train --preset smoke, E = export, P = predict,
V = evaluate) and checks the outcome: exit status 1 with exactly one
`error: ...` line that names the file (and line or object) and the problem,
and no traceback; or, where the issue asks for it, a correct result that says
loudly what it did (skipped entries listed, a warning).
"""

import contextlib
import fcntl
import json
import logging
import os
import pathlib
import re
import shutil

import pytest
from PIL import Image

import bad_input_data as bad
from locnet_tf.core import outputs

QUICK = bad.QUICK


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """The tiny untrained model, its self-describing .tflite, and a CSV source with its classes."""
    root = tmp_path_factory.mktemp("models")
    model = bad.tiny_model(root / "run" / "model.keras")
    return {
        "keras": model,
        "tflite": bad.tiny_tflite(model, root / "tiny_float32.tflite"),
        "data": bad.csv_source(root / "data"),
    }


# ----------------------------------------------------------------------------
# What the rows build: each returns the command line (a list).


_train = bad.train_argv


def _truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _corrupt_middle(path):
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(b ^ 0x55 for b in data[middle : middle + 16])
    path.write_bytes(bytes(data))


def _cut_copy(source, path, keep=0.5):
    shutil.copy(source, path)
    _truncate(path, keep)
    return path


def _file(path):
    path.touch()
    return path


def _folder(path):
    path.mkdir()
    return path


def _garbage(path):
    path.write_bytes(os.urandom(300))
    return path


def _big_png(path):
    # 20000 x 20000 one-bit pixels: a small zlib stream on disk, 400 megapixels decoded.
    if not _BIG_PNG:
        Image.new("1", (20000, 20000)).save(path)
        _BIG_PNG.append(path.read_bytes())
    path.write_bytes(_BIG_PNG[0])
    return path


_BIG_PNG = []  # made once per process: the picture takes a second to compress


def source_with(tmp, change):
    """A fresh CSV source under `tmp/data` with `change(root)` applied; returns its spec."""
    root = tmp / "data"
    spec = bad.csv_source(root)
    change(root)
    return spec


def truncated_jpeg(root):
    _truncate(root / "images" / "img02.jpg")


def corrupt_jpeg(root):
    _corrupt_middle(root / "images" / "img02.jpg")


def oversized_png(root):
    _big_png(root / "images" / "img03.png")


def relative_rows(root):
    rows = (root / "labels.csv").read_text().splitlines()
    rows[1] = "img00.jpg,0.1,0.2,0.5,0.6,car"
    (root / "labels.csv").write_text("\n".join(rows) + "\n")


def case_only_labels(root):
    text = (root / "labels.csv").read_text().replace(",car\n", ",Car\n", 1)
    (root / "labels.csv").write_text(text)


def background_and_object(root):
    with open(root / "labels.csv", "a") as f:
        f.write("img04.jpg,,,,,\n")


def yolo_with(tmp, **kwargs):
    return bad.yolo_source(tmp / "yolo", **kwargs)


def yolo_webp(tmp):
    spec = bad.yolo_source(tmp / "yolo")
    Image.new("RGB", (64, 48)).save(tmp / "yolo" / "images" / "train" / "photo.webp")
    (tmp / "yolo" / "labels" / "train" / "photo.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    return spec


def read_only(tmp, models, make_argv):
    folder = _STACK[-1].enter_context(bad.special_folder("readonly", tmp))
    if folder is None:
        pytest.skip("no read-only folder can be made here (not root and no tmpfs)")
    return make_argv(folder / "out")


def full_disk(tmp, models, make_argv):
    folder = _STACK[-1].enter_context(bad.special_folder("full", tmp, size="256k"))
    if folder is None:
        pytest.skip("no small file system can be mounted here")
    return make_argv(folder / "out")


def foreign_metadata(tmp, models, same_size):
    """A .tflite beside the metadata.json of another model."""
    folder = tmp / "export"
    folder.mkdir()
    tflite = folder / "model_float32.tflite"
    if same_size:
        shutil.copy(models["tflite"], tflite)
    else:  # a file without metadata inside, beside another model's json
        from locnet_tf.export import convert

        import keras

        model = keras.models.load_model(models["keras"])
        convert.write_tflite_source(model, tmp / "src")
        tflite.write_bytes(convert.convert_tflite(tmp / "src", "float32"))
    size = bad.IMAGE_SIZE if same_size else 96
    (folder / "metadata.json").write_text(
        json.dumps(
            {
                "classes": ["cat", "dog"],
                "input": {"size": size},
                "presence_threshold": 0.5,
                "artifacts": {"tflite_float32": {"path": tflite.name, "sha256": "0" * 64}},
            }
        )
    )
    photo = tmp / "photo.jpg"
    bad.make_photo(photo, 1)
    return [tflite, photo, "--quiet"]


# ----------------------------------------------------------------------------
# What the rows expect.


def error(pattern):
    """Exit status 1 and exactly one `error:` line matching `pattern`."""

    def check(code, out, err, tmp, caplog):
        lines = bad.error_lines(err)
        assert "Traceback" not in err, err
        assert code == 1 and len(lines) == 1, (code, err)
        assert re.search(pattern, lines[0]), lines[0]

    return check


def trained_skipping(pattern):
    """Exit status 0, and the skipped entry listed (logged as a warning) naming the file."""

    def check(code, out, err, tmp, caplog):
        assert code == 0, err
        assert "Traceback" not in err
        skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
        assert skipped and re.search(pattern, skipped[0]), caplog.text
        assert (tmp / "run" / "model.keras").is_file()

    return check


def loads(count):
    """The check command reads every image (none dropped) and says so."""

    def check(code, out, err, tmp, caplog):
        assert code == 0 and "Traceback" not in err, err
        report = json.loads((tmp / "report.json").read_text())
        assert report["total"]["images"] == count and report["skipped"] == 0

    return check


# A read-only --out: a read-only mount as root, a folder without write permission otherwise
# (`bad_input_data.special_folder`): the system says one or the other.
READ_ONLY = r"out: cannot write there \((Read-only file system|Permission denied)\)"

# ----------------------------------------------------------------------------
# One row per case of the issue: (id, command, build(tmp, models) -> argv, expect).

ROWS = [
    # --- crashes with a traceback
    (
        "truncated JPEG in training",
        "T",
        lambda t, m: _train(source_with(t, truncated_jpeg), t / "run"),
        error(r"labels\.csv:\d+: image file \S*img02\.jpg: JPEG image is truncated"),
    ),
    (
        "truncated JPEG, --skip-bad skips it",
        "T",
        lambda t, m: _train(source_with(t, truncated_jpeg), t / "run", "--skip-bad", *QUICK),
        trained_skipping(r"img02\.jpg: JPEG image is truncated"),
    ),
    (
        "truncated JPEG in check",
        "D",
        lambda t, m: [source_with(t, truncated_jpeg)],
        error(r"labels\.csv:\d+: image file \S*img02\.jpg: JPEG image is truncated"),
    ),
    (
        "20000x20000 PNG in check",
        "D",
        lambda t, m: [source_with(t, oversized_png)],
        error(r"labels\.csv:\d+: image file \S*img03\.png: image is too large: 20000x20000 pixels"),
    ),
    (
        "20000x20000 PNG in training",
        "T",
        lambda t, m: _train(source_with(t, oversized_png), t / "run"),
        error(r"img03\.png: image is too large: 20000x20000 pixels \(400 megapixels, over the limit of 100"),
    ),
    (
        "20000x20000 PNG, --skip-bad skips it",
        "T",
        lambda t, m: _train(source_with(t, oversized_png), t / "run", "--skip-bad", *QUICK),
        trained_skipping(r"img03\.png: image is too large"),
    ),
    (
        "20000x20000 PNG in predict",
        "P",
        lambda t, m: [m["tflite"], _big_png(t / "big.png"), "--quiet"],
        error(r"big\.png: image is too large: 20000x20000 pixels"),
    ),
    (
        "--out in a read-only folder: train",
        "T",
        lambda t, m: read_only(t, m, lambda out: _train(m["data"], out)),
        error(READ_ONLY),
    ),
    (
        "--out in a read-only folder: export",
        "E",
        lambda t, m: read_only(t, m, lambda out: [m["keras"], "--out", out, "--data", m["data"]]),
        error(READ_ONLY),
    ),
    (
        "--out in a read-only folder: predict",
        "P",
        lambda t, m: read_only(t, m, lambda out: [m["tflite"], m["data"][4:] + "/images/img00.jpg", "--out", out]),
        error(READ_ONLY),
    ),
    (
        "full disk: train",
        "T",
        lambda t, m: full_disk(t, m, lambda out: _train(m["data"], out, *QUICK)),
        error(r"out: not enough free space for the run folder: 0\.\d MB free, about \d+ MB needed"),
    ),
    (
        "full disk: export",
        "E",
        lambda t, m: full_disk(t, m, lambda out: [m["keras"], "--out", out, "--data", m["data"]]),
        error(r"out: not enough free space for the export"),
    ),
    (
        "--out is an existing file: train",
        "T",
        lambda t, m: _train(m["data"], _file(t / "taken")),
        error(r"--out \S*taken is a file; give a folder"),
    ),
    (
        "--out is an existing file: predict",
        "P",
        lambda t, m: [m["tflite"], m["data"][4:] + "/images/img00.jpg", "--out", _file(t / "taken")],
        error(r"--out \S*taken is a file; give a folder"),
    ),
    (
        "--out is a folder: evaluate",
        "V",
        lambda t, m: [m["keras"], "--data", m["data"], "--split", "train", "--out", _folder(t / "eval")],
        error(r"--out \S*eval is a folder; give a file name"),
    ),
    (
        "--batch-size 0",
        "T",
        lambda t, m: _train(m["data"], t / "run", "--batch-size", "0"),
        error(r"--batch-size must be an integer of at least 1, got 0"),
    ),
    (
        "a typo in the data kind",
        "D",
        lambda t, m: ["cvs:" + m["data"][4:]],
        error(r"Unknown data spec 'cvs:\S+'\. Did you mean 'csv:\S+'\?"),
    ),
    (
        "a Latin-1 file name in a YOLO folder: check",
        "D",
        lambda t, m: [yolo_with(t, names=[b"caf\xe9.jpg"]), "--json", t / "report.json"],
        loads(9),
    ),
    # --- silently wrong, or dropped unseen
    (
        "a JPEG corrupted in the middle: check",
        "D",
        lambda t, m: [source_with(t, corrupt_jpeg)],
        error(r"img02\.jpg: JPEG data is corrupt: Corrupt JPEG data"),
    ),
    (
        "a JPEG corrupted in the middle: train",
        "T",
        lambda t, m: _train(source_with(t, corrupt_jpeg), t / "run"),
        error(r"img02\.jpg: JPEG data is corrupt: Corrupt JPEG data"),
    ),
    (
        ".webp images in a YOLO folder",
        "D",
        lambda t, m: [yolo_webp(t)],
        error(r"labels/train/photo\.txt: image file \S*photo\.webp: a WEBP image; locnet_tf reads only JPEG"),
    ),
    (
        ".webp images in a YOLO folder: train",
        "T",
        lambda t, m: _train(yolo_webp(t), t / "run"),
        error(r"photo\.webp: a WEBP image"),
    ),
    (
        "a misspelt labels folder",
        "D",
        lambda t, m: [yolo_with(t, labels="lables")],
        error(
            r"none of the 8 images has a label file \(looked for labels/train/img00\.txt, \.\.\.\); is the labels "
            r"folder misspelt"
        ),
    ),
    (
        "a misspelt labels folder: train",
        "T",
        lambda t, m: _train(yolo_with(t, labels="lables"), t / "run"),
        error(r"none of the 8 images has a label file"),
    ),
    (
        "relative coordinates in a pixel CSV",
        "D",
        lambda t, m: [source_with(t, relative_rows)],
        error(
            r"labels\.csv:2: box \(0\.1, 0\.2, 0\.5, 0\.6\) is less than a pixel across: relative \(0\.\.1\) "
            r"coordinates\?"
        ),
    ),
    (
        "relative coordinates in a pixel CSV: train",
        "T",
        lambda t, m: _train(source_with(t, relative_rows), t / "run"),
        error(r"labels\.csv:2: box .* relative \(0\.\.1\) coordinates\?"),
    ),
    (
        "labels that differ only in case",
        "D",
        lambda t, m: [source_with(t, case_only_labels)],
        error(
            r"labels 'Car' \(labels\.csv:2\), 'car' \(labels\.csv:\d+\) differ only in case .* --class-map "
            r"'car=Car'"
        ),
    ),
    (
        "labels that differ only in case: train",
        "T",
        lambda t, m: _train(source_with(t, case_only_labels), t / "run"),
        error(r"labels 'Car' .* differ only in case"),
    ),
    (
        "one image listed as background and as an object",
        "D",
        lambda t, m: [source_with(t, background_and_object)],
        error(r"labels\.csv:14: img04\.jpg is listed as background here and with an object at labels\.csv:6"),
    ),
    (
        "one image listed as background and as an object: train",
        "T",
        lambda t, m: _train(source_with(t, background_and_object), t / "run"),
        error(r"img04\.jpg is listed as background here and with an object"),
    ),
    (
        "a .tflite beside another model's metadata.json (other input size)",
        "P",
        lambda t, m: foreign_metadata(t, m, same_size=False),
        error(
            r"model_float32\.tflite: carries no metadata, and \S*metadata\.json beside it belongs to another "
            r"model"
        ),
    ),
    # --- misleading, or not one line
    (
        "--epochs 0",
        "T",
        lambda t, m: _train(m["data"], t / "run", "--epochs", "0"),
        error(r"--epochs must be an integer of at least 1, got 0"),
    ),
    (
        "--epochs -1",
        "T",
        lambda t, m: _train(m["data"], t / "run", "--epochs", "-1"),
        error(r"--epochs must be an integer of at least 1, got -1"),
    ),
    (
        "--image-size 7",
        "T",
        lambda t, m: _train(m["data"], t / "run", "--image-size", "7"),
        error(r"--image-size must be a multiple of 16 \(the simple backbone's stride\) from 32 to 1024.*got 7"),
    ),
    (
        "--image-size 0",
        "T",
        lambda t, m: _train(m["data"], t / "run", "--image-size", "0"),
        error(r"--image-size must be a multiple of 16 .*got 0"),
    ),
    (
        "--resize strech",
        "T",
        lambda t, m: _train(m["data"], t / "run", "--resize", "strech"),
        error(r"--resize must be one of stretch, letterbox; got 'strech'"),
    ),
    (
        "a truncated .keras file: predict",
        "P",
        lambda t, m: [_cut_copy(m["keras"], t / "m.keras"), m["data"][4:] + "/images/img00.jpg"],
        error(r"m\.keras: not a readable \.keras model \(not a zip archive: truncated or damaged\?\)"),
    ),
    (
        "a truncated .keras file: export",
        "E",
        lambda t, m: [_cut_copy(m["keras"], t / "m.keras"), "--out", t / "export", "--data", m["data"]],
        error(r"m\.keras: not a readable \.keras model"),
    ),
    (
        "a garbage .tflite",
        "P",
        lambda t, m: [_garbage(t / "g.tflite"), m["data"][4:] + "/images/img00.jpg"],
        error(r"g\.tflite: not a TFLite model"),
    ),
    (
        "a truncated .tflite",
        "P",
        lambda t, m: [
            _cut_copy(m["tflite"], t / "t.tflite", 0.3),
            m["data"][4:] + "/images/img00.jpg",
            "--classes",
            "car,pedestrian",
        ],
        error(r"t\.tflite: not a readable TFLite model"),
    ),
]


_STACK = []  # the running row's ExitStack: special folders are unmounted when the row ends


@pytest.mark.parametrize("case,letter,build,expect", ROWS, ids=[row[0] for row in ROWS])
def test_case(case, letter, build, expect, tmp_path, models, capfd, caplog, monkeypatch):
    monkeypatch.delenv("LOCNET_TF_TRACEBACK", raising=False)
    with contextlib.ExitStack() as stack:
        _STACK.append(stack)
        stack.callback(_STACK.pop)
        argv = build(tmp_path, models)
        capfd.readouterr()
        with caplog.at_level(logging.WARNING, logger="locnet_tf.data"):
            code = bad.run_command(letter, argv)
        out, err = capfd.readouterr()
        expect(code, out, err, tmp_path, caplog)


# ----------------------------------------------------------------------------
# Rows whose outcome is more than one line of output.


def test_a_latin1_file_name_trains(tmp_path, capfd):
    spec = bad.yolo_source(tmp_path / "yolo", names=[b"caf\xe9.jpg"])
    code = bad.run_command("T", _train(spec, tmp_path / "run", *QUICK))
    assert code == 0, capfd.readouterr().err
    from locnet_tf.data import sources

    names = [pathlib.Path(r.path).name for r in sources.load_source(spec).records["train"]]
    assert os.fsdecode(b"caf\xe9.jpg") in names


def test_a_foreign_metadata_json_of_the_same_input_size_is_not_used(tmp_path, models, capfd):
    argv = foreign_metadata(tmp_path, models, same_size=True)
    with pytest.warns(UserWarning, match=r"metadata\.json is not used for \S*model_float32\.tflite"):
        code = bad.run_command("P", argv)
    out, err = capfd.readouterr()
    assert code == 0 and "Traceback" not in err
    row = json.loads(out.splitlines()[0])
    assert row["class_name"] in bad.CLASSES  # the file's own classes, not the json's cat / dog


def test_a_stale_partial_export_is_removed_by_the_next_export_and_only_that(tmp_path, models, capfd):
    parent = tmp_path / "export"
    stale = parent / ".tiny.partial-deadbeef0000"  # left by a killed export (no lock, or a free one)
    (stale / "saved_model").mkdir(parents=True)
    (stale / "saved_model" / "junk.bin").write_bytes(os.urandom(4096))
    legacy = parent / ".tiny.partial-k3j2h1g0"  # the mkdtemp name of earlier versions
    legacy.mkdir()
    active = parent / ".tiny.partial-cafe00000000"  # an export running in another process
    active.mkdir()
    lock = os.open(parent / ".tiny.partial-cafe00000000.lock", os.O_CREAT | os.O_WRONLY)
    fcntl.flock(lock, fcntl.LOCK_EX)
    other = parent / ".other.partial-deadbeef0000"  # another export's name
    other.mkdir()
    try:
        code = bad.run_command(
            "E",
            [
                models["keras"],
                "--out",
                parent / "tiny",
                "--data",
                models["data"],
                "--split",
                "train",
                "--formats",
                "tflite",
                "--quantize",
                "float32",
            ],
        )
        out, err = capfd.readouterr()
        assert code == 0, err
        assert not stale.exists() and not legacy.exists()
        assert active.is_dir() and other.is_dir()
        assert (parent / "tiny" / "model_float32.tflite").is_file()
        assert sorted(p.name for p in parent.iterdir()) == sorted(
            ["tiny", active.name, active.name + ".lock", other.name]
        )
    finally:
        os.close(lock)


def test_a_disk_that_fills_while_exporting_leaves_nothing(tmp_path, models, capfd, monkeypatch):
    with bad.special_folder("full", tmp_path, size="512k") as folder:
        if folder is None:
            pytest.skip("no small file system can be mounted here")
        # Past the estimate (a disk shared with another writer): the writes themselves fail.
        monkeypatch.setattr(outputs, "check_free_space", lambda *args: None)
        (folder / "tiny").mkdir()
        (folder / "tiny" / "labels.txt").write_text("the export before")
        outputs.mark_folder(folder / "tiny", "export")  # an earlier export: the only kind it may replace
        code = bad.run_command(
            "E", [models["keras"], "--out", folder / "tiny", "--data", models["data"], "--split", "train"]
        )
        out, err = capfd.readouterr()
        lines = bad.error_lines(err)
        assert code == 1 and len(lines) == 1 and "Traceback" not in err, err
        assert re.search(r"tiny: cannot write the export \(No space left on device", lines[0]), lines[0]
        assert sorted(p.name for p in folder.iterdir()) == ["tiny"]  # nothing half-written beside it
        assert (folder / "tiny" / "labels.txt").read_text() == "the export before"


def test_the_command_line_itself_prints_one_line(tmp_path, models):
    """One case through a real `python -m` process: no traceback, one line, status 1."""
    spec = source_with(tmp_path, truncated_jpeg)
    code, out, err = bad.run_subprocess("T", _train(spec, tmp_path / "run"))
    lines = bad.error_lines(err)
    assert code == 1 and len(lines) == 1 and "Traceback" not in err, err
    assert re.search(r"img02\.jpg: JPEG image is truncated", lines[0])


def test_predict_says_which_images_of_a_folder_it_does_not_read(tmp_path, models, capfd):
    bad.make_photo(tmp_path / "photos" / "a.jpg", 0)
    Image.new("RGB", (64, 48)).save(tmp_path / "photos" / "b.webp")
    code = bad.run_command("P", [models["tflite"], tmp_path / "photos", "--quiet"])
    out, err = capfd.readouterr()
    assert code == 0 and len(out.splitlines()) == 1
    assert re.search(r"warning: 1 image file not read .*: \S*b\.webp", err), err


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("ema", 1.0, r"--ema must be a number in \[0, 1\), got 1\.0"),
        ("label_smoothing", -0.1, r"--label-smoothing must be a number in \[0, 1\)"),
        ("dropout", 1.0, r"--dropout must be a number in \[0, 1\)"),
        ("learning_rate", 0.0, r"--learning-rate must be a number above 0"),
        ("warmup_epochs", 9.0, r"--warmup-epochs must be a number in \[0, 8\]"),
        ("steps_per_epoch", 0, r"--steps-per-epoch must be an integer of at least 1"),
        ("backbone", "resnet", r"--backbone must be one of simple, efficientnet_lite0, mobilenet_v2"),
        ("multi_object", "all", r"--multi-object must be one of largest, drop, fail"),
        ("jit_compile", "maybe", r"--jit-compile must be one of auto, true, false"),
        ("progressive_size", 72, r"--progressive-size must be a multiple of 16 from 32 to below --image-size 128"),
        ("filters", (8, 16), r"--filters must be 4 integers"),
        ("class_map", "car", r"class map entries look like 'old=new'"),
        ("init", "nowhere.keras", r"--init nowhere\.keras: no such model file or run folder"),
        ("seed", -1, r"--seed must be an integer from 0 to 4294967295"),
    ],
)
def test_config_values_are_checked_in_one_place(field, value, message):
    import dataclasses

    from locnet_tf.core import config as config_lib

    config_lib.validate(config_lib.Config())  # the defaults pass
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        config_lib.validate(dataclasses.replace(config_lib.Config(), **{field: value}))


def test_the_image_size_must_fit_the_backbones_stride():
    import dataclasses

    from locnet_tf.core import config as config_lib

    for backbone, size in (("simple", 112), ("mobilenet_v2", 128), ("efficientnet_b0", 96)):
        config_lib.validate(dataclasses.replace(config_lib.Config(), backbone=backbone, image_size=size))
    mobilenet = dataclasses.replace(config_lib.Config(), backbone="mobilenet_v2", image_size=112)
    with pytest.raises(
        ValueError, match=r"--image-size must be a multiple of 32 \(the mobilenet_v2 backbone's stride\)"
    ):
        config_lib.validate(mobilenet)
