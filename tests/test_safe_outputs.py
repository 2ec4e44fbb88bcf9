"""Issue 27, part 1: no command writes over its inputs, another command's folder or a folder of other files.

One row per case of the issue's table (1-5), then a property test: every
writing command (train, export, predict, evaluate --out, the data check's
--grid) is pointed at each of its own inputs and at a folder of unrelated
files, and the sha256 of every file in the workspace must be the same
afterwards. The command ends in exactly one `error:` line, or, where writing
there is right (a new folder), succeeds and changes nothing outside its
output. The rule itself is `locnet_tf.core.outputs` (claim_folder, claim_file).
"""

import hashlib
import json
import os
import pathlib
import shutil

import numpy as np
import pytest

import bad_input_data as bad
from locnet_tf.core import outputs

QUICK = bad.QUICK


def snapshot(root, leave_out=None):
    """{relative path: sha256} of every file under `root` (and "DIR/" for every folder), except under `leave_out`."""
    root = pathlib.Path(root)
    skip = os.path.realpath(leave_out) if leave_out is not None else None
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = pathlib.Path(folder) / name
            real = os.path.realpath(path) if not path.is_symlink() else os.path.abspath(path)
            if skip is not None and (real == skip or real.startswith(skip + os.sep)):
                continue
            key = str(path.relative_to(root))
            if path.is_symlink():
                found[key] = "-> " + os.readlink(path)
            elif path.is_dir():
                found[key + "/"] = "folder"
            else:
                found[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def run(capfd, letter, argv):
    """Runs a command as `python -m` does: (exit status, its `error:` lines, stderr)."""
    capfd.readouterr()
    code = bad.run_command(letter, argv)
    err = capfd.readouterr().err
    return code, bad.error_lines(err), err


def assert_refused(code, lines, err, *words):
    assert code == 1 and len(lines) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in lines[0], lines[0]


def make_video(path, frames=6):
    from locnet_tf.runtime import video_writer

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = video_writer.VideoWriter(path, 10)
    rng = np.random.default_rng(0)
    for _ in range(frames):
        writer.write(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    writer.close()
    return path


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A workspace: data, a start model, photos, a video, unrelated files, and a finished smoke run."""
    root = tmp_path_factory.mktemp("safe_outputs")
    spec = bad.csv_source(root / "data")
    model = bad.tiny_model(root / "models" / "start.keras")
    for i in range(3):
        bad.make_photo(root / "photos" / f"p{i}.png", i)
    bad.make_photo(root / "photos" / "sub" / "deep.jpg", 5)
    clip = make_video(root / "v" / "clip.mp4")
    (root / "unrelated" / "sub").mkdir(parents=True)
    (root / "unrelated" / "keep.txt").write_text("the user's notes\n")
    (root / "unrelated" / "sub" / "more.txt").write_text("more\n")
    bad.make_photo(root / "unrelated" / "holiday.png", 7)
    (root / "link").symlink_to(root / "data")
    # The run the cases export into and fine-tune; also the property's train into a new folder (trained once).
    before = snapshot(root)
    assert bad.run_command("T", bad.train_argv(spec, root / "run", *QUICK)) == 0
    changed = snapshot(root, leave_out=root / "run") != before
    return {"root": root, "spec": spec, "model": model, "clip": clip, "run": root / "run", "train_changed": changed}


# ----------------------------------------------------------------------------
# The cases 1-5.


def test_case1_export_into_the_training_run_is_refused(work, capfd):
    run_dir = work["run"]
    before = snapshot(work["root"])
    code, lines, err = run(capfd, "E", [run_dir / "model.keras", "--out", run_dir, "--data", work["spec"]])
    assert_refused(code, lines, err, str(run_dir), "training run folder")
    assert snapshot(work["root"]) == before


def test_case2_export_into_a_folder_of_other_files_is_refused(work, capfd):
    target = work["root"] / "unrelated"
    before = snapshot(work["root"])
    code, lines, err = run(capfd, "E", [work["model"], "--out", target, "--data", work["spec"]])
    assert_refused(code, lines, err, "export did not write", "holiday.png, keep.txt, sub/")
    assert snapshot(work["root"]) == before


def test_case3_a_video_into_its_own_folder_is_refused(work, capfd):
    before = snapshot(work["root"])
    v = work["clip"].parent
    code, lines, err = run(capfd, "P", [work["model"], work["clip"], "--out", v, "--quiet"])
    assert_refused(code, lines, err, str(work["clip"]), "a source")
    assert snapshot(work["root"]) == before


def test_case4_photos_into_their_own_folder_are_refused(work, capfd):
    photos = work["root"] / "photos"
    before = snapshot(work["root"])
    for out in (photos, photos / "sub", pathlib.Path(str(photos) + "/")):
        code, lines, err = run(capfd, "P", [work["model"], photos, "--out", out, "--quiet"])
        assert_refused(code, lines, err, "source folder")
    assert snapshot(work["root"]) == before


def test_case5_fine_tuning_in_place_reads_the_start_model_first(work, tmp_path, capfd):
    import keras

    run_dir = tmp_path / "run"
    shutil.copytree(work["run"], run_dir)
    start = keras.models.load_model(run_dir / "model.keras", compile=False)
    code, lines, err = run(capfd, "T", bad.train_argv(work["spec"], run_dir, "--init", run_dir, "--overwrite", *QUICK))
    assert code == 0 and not lines, err
    assert json.loads((run_dir / "config.json").read_text())["init"] == str(run_dir)
    history = (run_dir / "history.csv").read_text().strip().splitlines()
    assert len(history) == 2  # restarted: a header and one epoch
    tuned = keras.models.load_model(run_dir / "model.keras", compile=False)
    # Started from the old weights: one step moves a kernel a little, a fresh start is far away.
    for old, new in zip(start.weights, tuned.weights):
        if len(old.shape) == 4:
            old, new = np.asarray(old), np.asarray(new)
            assert np.abs(new - old).mean() < 0.2 * np.abs(old).mean(), old.shape
            break
    else:
        pytest.fail("no convolution kernel found")


# ----------------------------------------------------------------------------
# Existing users: folders written before the marker, and what keeps working.


def test_an_older_run_folder_without_the_marker_resumes(work, tmp_path, capfd):
    run_dir = tmp_path / "old_run"
    shutil.copytree(work["run"], run_dir)
    (run_dir / outputs.MARKER).unlink()
    model_before = snapshot(run_dir)["model.keras"]
    code, lines, err = run(capfd, "T", bad.train_argv(work["spec"], run_dir, *QUICK))
    assert code == 0 and not lines, err
    assert snapshot(run_dir)["model.keras"] == model_before
    assert json.loads((run_dir / outputs.MARKER).read_text())["command"] == "train"


def test_an_older_export_folder_is_replaced_and_a_run_is_not_an_export(work, tmp_path, capfd):
    old = tmp_path / "export" / "tiny"
    old.mkdir(parents=True)
    (old / "metadata.json").write_text(json.dumps({"artifacts": {}, "source_sha256": "0" * 64}))
    (old / "model_float32.tflite").write_bytes(b"an older export")
    (old / "saved_model").mkdir()
    assert outputs.folder_owner(old) == "export"
    assert outputs.folder_owner(work["run"]) == "train"
    argv = [work["model"], "--out", old, "--data", work["spec"], "--split", "train"]
    code, lines, err = run(capfd, "E", argv + ["--formats", "tflite", "--quantize", "float32", "--quiet"])
    assert code == 0 and not lines, err
    assert (old / "model_float32.tflite").read_bytes() != b"an older export"
    assert json.loads((old / outputs.MARKER).read_text())["command"] == "export"
    assert not (old / "saved_model").exists()
    # The marked export now refuses a run's model into it (holds no input) and a file added by hand.
    (old / "notes.txt").write_text("mine")
    before = snapshot(tmp_path)
    code, lines, err = run(capfd, "E", argv)
    assert_refused(code, lines, err, "notes.txt", "would delete")
    assert snapshot(tmp_path) == before


def test_another_commands_folder_is_named(tmp_path):
    (tmp_path / "preds").mkdir()
    outputs.mark_folder(tmp_path / "preds", "predict")
    (tmp_path / "preds" / "a.png").write_bytes(b"x")
    with pytest.raises(
        ValueError, match=r"is a folder of annotated predictions \(written by predict\), not a training"
    ):
        outputs.claim_folder(tmp_path / "preds", "train")
    outputs.claim_folder(tmp_path / "preds", "predict")  # its own: written again
    outputs.claim_folder(tmp_path / "new" / "deeper", "export")  # new
    (tmp_path / "empty").mkdir()
    outputs.claim_folder(tmp_path / "empty", "export")


def test_an_output_may_lie_inside_a_data_folder_but_never_be_or_hold_it(tmp_path):
    # `train --data yolo:. --out runs/mine`: a project folder holds its data and its runs.
    (tmp_path / "images").mkdir()
    inputs = outputs.data_inputs(f"yolo:{tmp_path}")
    outputs.check_not_input(tmp_path / "runs" / "mine", inputs)
    with pytest.raises(ValueError, match="is the data folder"):
        outputs.check_not_input(tmp_path, inputs)
    with pytest.raises(ValueError, match="holds"):
        outputs.check_not_input(tmp_path.parent, inputs)


def test_inputs_are_compared_as_resolved_paths(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.jpg").write_bytes(b"x")
    (tmp_path / "alias").symlink_to(tmp_path / "data")
    inputs = [(tmp_path / "data", "the data folder"), (tmp_path / "missing", "a camera")]
    outputs.check_not_input(tmp_path / "data2", inputs)  # a name that starts alike is another folder
    outputs.check_not_input(tmp_path / "out", inputs)
    for out, words in (
        (tmp_path / "alias", "is the data folder"),
        (tmp_path / "alias" / "x" / "report.json", "lies inside"),
        (tmp_path, "holds"),
    ):
        with pytest.raises(ValueError, match=words):
            outputs.check_not_input(out, inputs)
    # A file input: its folder may take other outputs, the file itself is never one.
    outputs.check_not_input(tmp_path / "data" / "b.png", [(tmp_path / "data" / "a.jpg", "a source image")])
    with pytest.raises(ValueError, match="is a source image"):
        outputs.check_not_input(tmp_path / "alias" / "a.jpg", [(tmp_path / "data" / "a.jpg", "a source image")])


def test_png_text_reads_the_grid_tag(tmp_path):
    from locnet_tf.core import figures as plots

    path = plots.draw_examples_grid(
        [np.zeros((8, 8, 3), np.uint8)], [[0.5, 0.5, 0.2, 0.2]], [0], ["a"], tmp_path / "g.png"
    )
    assert outputs.png_text(path)[outputs.GRID_TAG[0]] == outputs.GRID_TAG[1]
    bad.make_photo(tmp_path / "photo.png", 0)
    assert outputs.GRID_TAG[0] not in outputs.png_text(tmp_path / "photo.png")
    assert outputs.png_text(tmp_path / "missing.png") == {}


# ----------------------------------------------------------------------------
# The property: each writing command, `--out` at each of its inputs and at unrelated files.


def _argv(letter, work, out):
    root, spec = work["root"], work["spec"]
    if letter == "T":
        return bad.train_argv(spec, out, "--init", work["model"], *QUICK)
    if letter == "E":
        return [work["model"], "--out", out, "--data", spec, "--split", "train", "--formats", "tflite"]
    if letter == "P":
        return [work["model"], root / "photos", work["clip"], "--out", out, "--quiet"]
    if letter == "V":
        return [work["model"], "--data", spec, "--split", "train", "--out", out]
    return [spec, "--grid", out, "--quick"]  # D: the data check


# (command, --out relative to the workspace, whether writing there is right)
PROPERTY_CASES = [
    # train: the data, inside it, a link to it, the start model and its folder, unrelated files; a new folder
    *[("T", target, False) for target in ("data", "data/images", "data/labels.csv", "data/images/img00.jpg")],
    *[("T", target, False) for target in ("link", "models", "models/start.keras", "unrelated", "unrelated/keep.txt")],
    # export: the model and its folder, the data, unrelated files
    *[("E", target, False) for target in ("models", "models/start.keras", "data", "data/images", "link")],
    *[("E", target, False) for target in ("data/labels.csv", "data/images/img00.jpg", "unrelated")],
    # predict: the model and its folder, the photos and the video (and their folders), unrelated files; a new folder
    *[("P", target, False) for target in ("models", "models/start.keras", "photos", "photos/sub", "v")],
    *[("P", target, False) for target in ("v/clip.mp4", "photos/p0.png", "unrelated")],
    ("P", "predictions", True),
    # evaluate --out: the model, the data, inside the data, unrelated files; a new report
    *[("V", target, False) for target in ("models/start.keras", "data/labels.csv", "data/images/img00.jpg")],
    *[("V", target, False) for target in ("unrelated", "unrelated/keep.txt", "unrelated/holiday.png")],
    ("V", "reports/report.json", True),
    # the data check's --grid: the annotations, an image, inside the data, unrelated files; a new picture
    *[("D", target, False) for target in ("data", "data/labels.csv", "data/images/img01.png")],
    *[("D", target, False) for target in ("unrelated", "unrelated/keep.txt", "unrelated/holiday.png")],
    ("D", "grid.png", True),
]


@pytest.mark.parametrize("letter, target", [("V", "data/report.json"), ("D", "data/grid.png"), ("D", "link/grid.png")])
def test_a_new_output_inside_the_data_folder_changes_no_file_of_it(work, capfd, letter, target):
    # A project folder holds its data and its outputs (`--data yolo:. --out runs/mine`): writing a new
    # report or picture there is allowed, and no file that was there before changes.
    root = work["root"]
    before = snapshot(root)
    try:
        code, lines, err = run(capfd, letter, _argv(letter, work, root / target))
        assert code == 0 and not lines, err
        after = snapshot(root)
        assert {k: v for k, v in after.items() if k in before} == before
        assert (root / target).is_file()
    finally:  # the workspace is the module's: leave it as it was for the other cases
        for key in set(snapshot(root)) - set(before):
            path = root / key.rstrip("/")
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() and not path.is_symlink() else path.unlink(
                missing_ok=True
            )


def test_train_into_a_new_folder_changes_nothing_else(work):
    assert (work["run"] / "model.keras").is_file() and (work["run"] / outputs.MARKER).is_file()
    assert not work["train_changed"]  # the workspace's sha256s outside the run, before and after training


@pytest.mark.parametrize(
    "letter, target, writes", PROPERTY_CASES, ids=[f"{c[0]}-{c[1].replace('/', '_')}" for c in PROPERTY_CASES]
)
def test_no_command_writes_over_its_inputs_or_other_files(work, capfd, letter, target, writes):
    root = work["root"]
    out = root / target
    # What a command that may write creates: its output, the folders above it, and (evaluate) eval/ beside it.
    created = root / target.split("/")[0]
    assert writes is False or not created.exists()
    before = snapshot(root)
    code, lines, err = run(capfd, letter, _argv(letter, work, out))
    if not writes:
        assert_refused(code, lines, err)
        assert snapshot(root) == before, f"{letter} --out {target} changed the workspace"
        return
    assert code == 0 and not lines, err
    assert out.exists()
    assert snapshot(root, leave_out=created) == before
    if letter == "D":  # its own grid: replaced when asked again
        code, lines, err = run(capfd, letter, _argv(letter, work, out))
        assert code == 0 and not lines, err
    if letter == "V":  # its own report and pictures: replaced; the pictures' folder is beside the report
        assert (out.parent / "eval" / outputs.MARKER).is_file()
        code, lines, err = run(capfd, letter, _argv(letter, work, out))
        assert code == 0 and not lines, err
        assert snapshot(root, leave_out=created) == before
