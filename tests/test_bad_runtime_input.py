"""Issue 27, the runtime, video and command-line cases (7, 11, 12, 13, 16, 18, 19, 20, 21), one test or row each.

Fixtures are generated here (`bad_input_data`: the tiny model and its
.tflite; videos made with PyAV). Commands run as `python -m` runs them
(`cli.run` around `main`), or as real processes where a signal is the case.
Each checks one `error:` line naming the file (exit status 1), or the right
result said loudly (a `warning:` line), and that no file was half-written.
"""

import contextlib
import fcntl
import hashlib
import importlib
import io
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time
import traceback

import av
import numpy as np
import pytest

import bad_input_data as bad
from locnet_tf.core import cli, outputs
from locnet_tf.evaluate import predictor as inference
from locnet_tf.runtime import source_specs, tflite as runtime, video
from locnet_tf.core import config as config_lib


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """The tiny untrained model (in a run folder), its .tflite, and a photo to predict."""
    root = tmp_path_factory.mktemp("models")
    model = bad.tiny_model(root / "run" / "model.keras")
    photo = root / "photo.jpg"
    bad.make_photo(photo, 0)
    return {"keras": model, "tflite": bad.tiny_tflite(model, root / "tiny_float32.tflite"), "photo": photo}


def make_video(path, frames=20, size=(48, 64), rotation=None, hflip=False, vflip=False, faststart=True):
    """An H.264 .mp4 of noisy frames with a red marker in the stored top-left corner; returns the frames."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    images = []
    with av.open(str(path), mode="w", options={"movflags": "faststart"} if faststart else {}) as container:
        stream = container.add_stream("libx264", rate=25)
        stream.height, stream.width = size
        stream.pix_fmt = "yuv444p"
        stream.options = {"preset": "ultrafast", "crf": "0"}  # lossless but for RGB <-> YUV rounding
        if rotation is not None:
            stream.set_display_rotation(rotation, hflip=hflip, vflip=vflip)
        for _ in range(frames):
            image = rng.integers(0, 80, (*size, 3), dtype=np.uint8)
            image[:8, :12] = (255, 0, 0)
            images.append(image)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return images


def assert_same_picture(got, expected):
    """The same pixels but for the colour conversion's rounding (a turned or mirrored one differs by far more)."""
    assert got.shape == expected.shape
    assert np.abs(got.astype(int) - expected).max() <= 3


def sha(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def run(letter, argv, capfd):
    """A command through `cli.run`: (exit status, stdout, stderr)."""
    capfd.readouterr()
    code = bad.run_command(letter, argv)
    out, err = capfd.readouterr()
    return code, out, err


def one_error(code, err, pattern):
    lines = bad.error_lines(err)
    assert "Traceback" not in err, err
    assert code == 1 and len(lines) == 1, (code, err)
    assert re.search(pattern, lines[0]), lines[0]


def partials(folder):
    return sorted(p.name for p in pathlib.Path(folder).iterdir() if ".partial-" in p.name)


def start(argv, cwd, first_path=()):
    """`python -m ARGV` in its own process, SIGINT handled as in a terminal (a background shell ignores it).

    `first_path`: folders put first on its module path (e.g. one with a `sitecustomize.py`).
    """
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=os.pathsep.join([*map(str, first_path), *sys.path]))
    return subprocess.Popen(
        [sys.executable, "-m", *map(str, argv)],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def wait_for(found, process, timeout=120):
    """Waits until `found()` is true (the command is at work); fails if the process ends first."""
    deadline = time.monotonic() + timeout
    while not found():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the command never got there"
        time.sleep(0.05)


# ----------------------------------------------------------------------------
# 7: predict --out of a video, killed: the previous output survives, no file under the final name.


def test_7_a_killed_video_run_leaves_the_previous_output_and_the_next_run_clears_its_partial(tmp_path, models, capfd):
    long_clip = tmp_path / "in" / "clip.mp4"
    make_video(long_clip, frames=1500)
    out = tmp_path / "out"
    out.mkdir()
    outputs.mark_folder(out, "predict")  # an earlier predict's folder
    make_video(out / "clip.mp4", frames=3)  # the previous good output of that name
    before = sha(out / "clip.mp4")
    process = start(["locnet_tf.predict", models["tflite"], long_clip, "--out", out, "--quiet"], tmp_path)
    wait_for(lambda: partials(out), process)
    time.sleep(0.3)  # frames are being encoded into the partial file
    process.kill()
    process.communicate()
    assert sha(out / "clip.mp4") == before  # untouched while the new one was written
    (left,) = partials(out)
    assert re.fullmatch(r"\.clip\.partial-\w+\.mp4", left)

    # Another name's partial and a partial that a live writer holds (locked) are not this run's to remove.
    other = out / ".other.partial-abc123.mp4"
    other.write_bytes(b"x")
    live = out / ".clip.partial-live01.mp4"
    live.write_bytes(b"x")
    with open(live, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        short_clip = tmp_path / "again" / "clip.mp4"
        make_video(short_clip, frames=4)
        code, stdout, err = run("P", [models["tflite"], short_clip, "--out", out, "--quiet"], capfd)
    assert code == 0, err
    assert partials(out) == sorted([other.name, live.name])  # the killed run's partial is gone
    assert sha(out / "clip.mp4") != before
    with av.open(str(out / "clip.mp4")) as written:
        assert sum(1 for _ in written.decode(video=0)) == 4


def test_7_a_run_that_fails_mid_video_leaves_the_previous_output(tmp_path, models, capfd, monkeypatch):
    clip = tmp_path / "clip.mp4"
    make_video(clip, frames=10)
    out = tmp_path / "out"
    out.mkdir()
    outputs.mark_folder(out, "predict")  # an earlier predict's folder
    (out / "clip.mp4").write_bytes(b"the previous output")
    real = runtime.TFLitePredictor.predict
    calls = []

    def failing(self, image):
        calls.append(1)
        if len(calls) == 5:
            raise OSError(28, "No space left on device", str(out / "clip.mp4"))
        return real(self, image)

    monkeypatch.setattr(runtime.TFLitePredictor, "predict", failing)
    code, _, err = run("P", [models["tflite"], clip, "--out", out, "--quiet", "--exact-resize"], capfd)
    one_error(code, err, r"out/clip\.mp4: No space left on device")
    assert (out / "clip.mp4").read_bytes() == b"the previous output"
    assert partials(out) == []


# ----------------------------------------------------------------------------
# 11: a faststart .mp4 cut in half.


@pytest.mark.parametrize("threads", ["0", "1"])
def test_11_a_video_cut_in_half_is_reported_with_frames_read_and_declared(tmp_path, models, capfd, threads):
    clip = tmp_path / "cut.mp4"
    make_video(clip, frames=100)
    data = clip.read_bytes()
    clip.write_bytes(data[: len(data) // 2])
    code, out, err = run("P", [models["tflite"], clip, "--quiet", "--decoder-threads", threads], capfd)
    rows = [json.loads(line) for line in out.splitlines()]
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert code == 0 and "Traceback" not in err, err
    assert len(warnings) == 1, err
    found = re.search(r"cut\.mp4: the file ends early \(cut short or damaged\): (\d+) of the 100 frames", warnings[0])
    assert found, warnings[0]
    assert 0 < int(found[1]) < 100 and len(rows) == int(found[1])  # what could be read is predicted


def test_11_a_whole_video_says_nothing_and_a_video_with_no_frame_is_an_error(tmp_path, models, capfd):
    clip = tmp_path / "whole.mp4"
    make_video(clip, frames=12)
    source = video.Source("video", str(clip))
    assert len(list(source.frames())) == 12 and source.frames_read == 12 and not source.truncated
    assert "warning" not in capfd.readouterr().err
    data = clip.read_bytes()
    head = data.index(b"mdat") + 40  # the header, and the first bytes of the first frame only
    (tmp_path / "head.mp4").write_bytes(data[:head])
    code, _, err = run("P", [models["tflite"], tmp_path / "head.mp4", "--quiet"], capfd)
    one_error(code, err, r"head\.mp4: (no frame could be read|cannot read frame)")


# ----------------------------------------------------------------------------
# 12: a phone video with a display-matrix rotation.


def test_12_a_rotated_video_is_predicted_and_written_upright(tmp_path, models, capfd):
    clip = tmp_path / "portrait.mp4"
    stored = make_video(clip, frames=6, rotation=-90)  # stored 48x64 landscape; shown turned 90 degrees clockwise
    (frame, *_) = video.Source("video", str(clip)).frames()
    shown = np.rot90(stored[0], -1)
    assert frame.image.shape == (64, 48, 3)
    assert_same_picture(frame.image, shown)  # the marker is now top-right, as a player shows it
    out = tmp_path / "out"
    code, stdout, err = run(
        "P", [models["tflite"], clip, "--out", out, "--quiet", "--no-smooth", "--exact-resize"], capfd
    )
    assert code == 0, err
    rows = [json.loads(line) for line in stdout.splitlines()]
    assert len(rows) == 6 and all(row["image_size"] == [64, 48] for row in rows)
    expected = runtime.TFLitePredictor(models["tflite"]).predict(frame.image).to_dict()
    assert rows[0]["box_pixels"] == pytest.approx(expected["box_pixels"], abs=1e-4)
    with av.open(str(out / "portrait.mp4")) as written:
        first = next(written.decode(video=0))
        assert (first.height, first.width) == (64, 48) and first.rotation == 0  # upright pixels, no matrix


@pytest.mark.parametrize("rotation", [0, 90, 180, -90])
@pytest.mark.parametrize("flips", [(False, False), (True, False), (False, True)])
def test_12_every_orientation_a_display_matrix_holds_is_undone(tmp_path, rotation, flips):
    """PyAV's rule for the matrix it writes: turn `rotation` degrees counter-clockwise, then mirror."""
    hflip, vflip = flips
    stored = make_video(tmp_path / "o.mp4", frames=1, rotation=rotation, hflip=hflip, vflip=vflip)
    expected = np.rot90(stored[0], rotation // 90)
    expected = expected[:, ::-1] if hflip else expected
    expected = expected[::-1] if vflip else expected
    (frame,) = video.Source("video", str(tmp_path / "o.mp4")).frames()
    assert_same_picture(frame.image, expected)


# ----------------------------------------------------------------------------
# 13: symlink loops under a glob or a folder.


@pytest.fixture
def looped(tmp_path):
    """d/ with two images, a subfolder, two symlink loops, a link to a folder and a link to an image."""
    d = tmp_path / "d"
    bad.make_photo(d / "a.png", 0)
    bad.make_photo(d / "sub" / "b.png", 1)
    bad.make_photo(tmp_path / "elsewhere" / "c.png", 2)
    (d / "loop").symlink_to(d, target_is_directory=True)
    (d / "sub" / "up").symlink_to(d, target_is_directory=True)
    (d / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (d / "same.png").symlink_to(d / "a.png")
    return d


@contextlib.contextmanager
def time_limit(seconds):
    def stop(*_):
        raise TimeoutError(f"still walking after {seconds} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("spec", ["d/**/*.png", "d", "d/**"])
def test_13_symlink_loops_are_walked_once_and_each_image_predicted_once(looped, models, capfd, monkeypatch, spec):
    monkeypatch.chdir(looped.parent)
    with time_limit(60):
        code, out, err = run("P", [models["tflite"], spec, "--quiet"], capfd)
    assert code == 0, err
    predicted = sorted(os.path.realpath(json.loads(line)["source"]) for line in out.splitlines())
    root = looped.parent.resolve()
    # a.png once (also reached as same.png and through both loops), b.png once, c.png through the folder link
    assert predicted == sorted(str(root / p) for p in ("d/a.png", "d/sub/b.png", "elsewhere/c.png"))


def test_13_glob_matching_follows_glob_rules(tmp_path, monkeypatch):
    for name in ("x/a.png", "x/.hidden/b.png", "x/y/z/c.png", "x/y/d.jpg", "x/.e.png"):
        bad.make_photo(tmp_path / name, 0)
    monkeypatch.chdir(tmp_path)
    for pattern in ("x/**/*.png", "x/**", "x/*/*.jpg", "**/*.png", "x/y/**/*.png", "x/.hidden/*.png"):
        ours = sorted(s.spec for s in source_specs.expand_sources([pattern]))
        import glob

        theirs = sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
        assert ours == theirs, pattern


# ----------------------------------------------------------------------------
# 16: arrays that are not uint8 0..255.


BAD_ARRAYS = [
    ("float in 0..1", lambda: np.random.default_rng(0).random((40, 50, 3)), r"float image in 0\.\.1.*multiply by 255"),
    (
        "int64 up to 2550",
        lambda: np.random.default_rng(0).integers(0, 2551, (40, 50, 3)),
        r"int64 image with values from \d+ to 2550, outside 0\.\.255",
    ),
    ("0x0x3", lambda: np.zeros((0, 0, 3), np.uint8), r"empty image"),
    ("NaN", lambda: np.full((8, 8, 3), np.nan), r"NaN"),
    ("negative", lambda: np.full((8, 8, 3), -1.0), r"outside 0\.\.255"),
]


@pytest.fixture(scope="module")
def predictors(models):
    return {"keras": inference.Predictor(models["keras"]), "tflite": runtime.TFLitePredictor(models["tflite"])}


@pytest.mark.parametrize("kind", ["keras", "tflite"])
@pytest.mark.parametrize("case,make,message", BAD_ARRAYS, ids=[row[0] for row in BAD_ARRAYS])
def test_16_arrays_outside_uint8_are_refused_with_the_reason(predictors, kind, case, make, message):
    with pytest.raises(ValueError, match=message):
        predictors[kind].predict(make())


@pytest.mark.parametrize("kind", ["keras", "tflite"])
def test_16_arrays_in_0_255_of_any_type_predict_as_uint8(predictors, kind):
    image = np.random.default_rng(1).integers(0, 256, (40, 50, 3)).astype(np.uint8)
    expected = predictors[kind].predict(image).to_dict()
    for same in (image.astype(np.int64), image.astype(np.float32), image.astype(np.float64) + 0.2):
        assert predictors[kind].predict(same).to_dict() == expected


# ----------------------------------------------------------------------------
# 18: nan and inf in every float flag.


class _Parsed(Exception):
    pass


def _float_flags(letter, monkeypatch):
    """Every flag the command declares `type=float` (its parser must be a `cli.ArgumentParser`)."""
    found = []

    def spy(self, args=None, namespace=None):
        found.extend(a.option_strings[-1] for a in self._actions if a.type is float and a.option_strings)
        raise _Parsed

    with monkeypatch.context() as patch:
        patch.setattr(cli.ArgumentParser, "parse_known_args", spy)
        with pytest.raises(_Parsed):
            importlib.import_module(bad.COMMANDS[letter][0]).main(["m.keras", "x.jpg"])
    return found


POSITIONALS = {"T": [], "E": ["m.keras"], "V": ["m.keras"], "P": ["m.tflite", "x.jpg"]}


@pytest.mark.parametrize("letter", ["T", "E", "V", "P"])
def test_18_every_float_flag_refuses_nan_and_inf_in_one_line(letter, monkeypatch, capfd):
    flags = _float_flags(letter, monkeypatch)
    assert flags or letter == "T"  # train's config floats are declared by the dataclass's type
    if letter == "T":
        flags = [f"--{f.name.replace('_', '-')}" for f in config_lib.dataclasses.fields(config_lib.Config)]
        flags = [f for f, field in zip(flags, config_lib.dataclasses.fields(config_lib.Config)) if field.type is float]
        assert "--learning-rate" in flags
    if letter == "V":
        assert "--threshold" in flags
    for flag in flags:
        for value in ("nan", "inf", "-inf"):
            code, _, err = run(letter, [*POSITIONALS[letter], f"{flag}={value}"], capfd)
            one_error(code, err, rf"{flag} must be a (finite )?number.*got {value}")


# ----------------------------------------------------------------------------
# 19: config.json beside a model.

CONFIGS = [
    ("[]", b"[]", r"config\.json: a JSON array, not an object of config fields"),
    (
        "class_names 5",
        b'{"class_names": 5}',
        r'config\.json: field "class_names" is 5, expected a list of strings or null',
    ),
    ("{", b"{", r"config\.json: not valid JSON \(.* at line 1, column 2\)"),
    ("not UTF-8", b'{"resize": "stre\xe9tch"}', r"config\.json: not UTF-8 text"),
    (
        "a string for an integer",
        b'{"image_size": "32"}',
        r'config\.json: field "image_size" is "32", expected an integer',
    ),
]


@pytest.mark.parametrize("case,content,message", CONFIGS, ids=[row[0] for row in CONFIGS])
def test_19_a_bad_config_json_is_one_line_naming_it(tmp_path, models, capfd, case, content, message):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "model.keras").write_bytes(models["keras"].read_bytes())
    (run_dir / "config.json").write_bytes(content)
    code, _, err = run("P", [run_dir / "model.keras", models["photo"], "--quiet"], capfd)
    one_error(code, err, message)


def test_19_an_unknown_field_is_warned_about_and_does_not_block_predict(tmp_path, models, capfd):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "model.keras").write_bytes(models["keras"].read_bytes())
    (run_dir / "config.json").write_text(json.dumps({"resize": "letterbox", "from_a_newer_version": 1}))
    code, out, err = run("P", [run_dir / "model.keras", models["photo"], "--quiet"], capfd)
    assert code == 0 and len(out.splitlines()) == 1, err
    # Two lines: the unknown field, and the model's own resize (stretch) winning over the config's.
    warning, disagreement = sorted(line for line in err.splitlines() if line.startswith("warning:"))
    assert re.search(r"config\.json: ignored the field from_a_newer_version", warning), warning
    assert disagreement.endswith("says 'letterbox': the model's is used."), disagreement
    assert config_lib.Config.load(run_dir / "config.json").resize == "letterbox"  # the known fields still count


# ----------------------------------------------------------------------------
# 20: --weights that are not weights, or another network's.


def _train_mobilenet(tmp_path, models, weights):
    data = bad.csv_source(tmp_path / "data", count=6)
    return bad.train_argv(
        data, tmp_path / "run", "--backbone", "mobilenet_v2", "--image-size", "32", "--weights", weights
    )


def test_20_a_garbage_weights_file_is_one_line_naming_it(tmp_path, models, capfd):
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(os.urandom(3000))
    code, _, err = run("T", _train_mobilenet(tmp_path, models, garbage), capfd)
    one_error(code, err, r"--weights \S*garbage\.h5: not a Keras weights file")


def test_20_another_models_weights_are_one_line_without_keras_warnings(tmp_path, models, capfd):
    code, _, err = run("T", _train_mobilenet(tmp_path, models, models["keras"]), capfd)
    one_error(code, err, r"--weights \S*model\.keras: these weights do not fit the mobilenet_v2 backbone at 32 px")
    assert "Warning" not in err and len(err.splitlines()) <= 3, err


@pytest.mark.slow
def test_20_weights_that_fit_the_backbone_pass_the_check(tmp_path):
    import keras

    from locnet_tf.model import network as model_lib
    from locnet_tf.model import weights as weights_check

    built = model_lib.build_model(backbone="mobilenet_v2", image_size=32)
    net = next(layer for layer in built.layers if isinstance(layer, keras.Model))
    net.save_weights(tmp_path / "mine.weights.h5")
    weights_check.check_weights_file(str(tmp_path / "mine.weights.h5"), "mobilenet_v2", 32)  # no error


# ----------------------------------------------------------------------------
# 21: Ctrl-C.


@pytest.mark.parametrize("letter", ["T", "E", "P", "V"])
def test_21_ctrl_c_in_a_command_is_one_line_and_status_130(letter, capfd, monkeypatch):
    module = importlib.import_module(bad.COMMANDS[letter][0])

    def interrupted(argv):
        raise KeyboardInterrupt

    monkeypatch.setattr(module, "main", interrupted)
    code, out, err = run(letter, [], capfd)
    assert code == 130 and err == "interrupted\n", (code, err)


def test_21_ctrl_c_during_predict_of_a_video_leaves_nothing_half_written(tmp_path, models):
    clip = tmp_path / "clip.mp4"
    make_video(clip, frames=1500)
    out = tmp_path / "out"
    process = start(["locnet_tf.predict", models["tflite"], clip, "--out", out, "--quiet"], tmp_path)
    wait_for(lambda: out.is_dir() and partials(out), process)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == "interrupted"
    assert [p.name for p in out.iterdir()] == [outputs.MARKER]  # no video under the final name, no partial


@pytest.mark.slow
@pytest.mark.parametrize("command", ["export", "train", "evaluate", "data"])
def test_21_ctrl_c_during_export_train_evaluate_and_data_is_one_line(tmp_path, models, command):
    data = bad.csv_source(tmp_path / "data", count=12)
    out = tmp_path / "out"
    argv, busy = {
        "export": (
            ["locnet_tf.export", models["keras"], "--out", out / "tiny", "--data", data],
            lambda: out.is_dir() and partials(out),
        ),
        "train": (
            ["locnet_tf.train", *bad.train_argv(data, out, "--epochs", "500", "--quiet")],
            lambda: (out / "config.json").exists(),
        ),
        "evaluate": (["locnet_tf.evaluate", models["keras"], "--data", data], None),
        "data": (["locnet_tf.data", data], None),
    }[command]
    # The data command loads no TensorFlow and checks 12 photos in well under a second: on a slow disk
    # (every image read takes a second, made so at start-up by a sitecustomize) the Ctrl-C lands mid-check.
    slow_disk = tmp_path / "slow_disk"
    slow_disk.mkdir()
    (slow_disk / "sitecustomize.py").write_text(
        "import pathlib, time\n"
        "_read_bytes = pathlib.Path.read_bytes\n"
        "def read_bytes(self):\n"
        "    if self.suffix in ('.jpg', '.png'):\n"
        "        time.sleep(1.0)\n"
        "    return _read_bytes(self)\n"
        "pathlib.Path.read_bytes = read_bytes\n"
    )
    process = start(argv, tmp_path, first_path=[slow_disk] if command == "data" else [])
    if busy is not None:
        wait_for(busy, process)
    else:
        time.sleep(2.0)  # importing or at work: either way one line
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=300)
    # 130 from cli.run; -SIGINT when the signal came during the imports, before `run` (a shell shows 130 too)
    assert process.returncode in (130, -signal.SIGINT), (process.returncode, err)
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "interrupted", err
    if command == "export":
        assert not (out / "tiny").exists() and partials(out) == []


def test_21_an_atomic_write_interrupted_leaves_the_previous_file(tmp_path):
    target = tmp_path / "report.json"
    target.write_text("before")
    with pytest.raises(KeyboardInterrupt):
        with outputs.atomic_path(target) as partial:
            partial.write_text("half")
            raise KeyboardInterrupt
    assert target.read_text() == "before" and partials(tmp_path) == []


def test_21_ctrl_c_that_tensorflow_turns_into_another_error_is_still_an_interruption(capfd):
    """A KeyboardInterrupt raised while TensorFlow's C++ calls back into Python can come out as a TypeError."""

    def main(argv):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)  # the handler raises here
        except KeyboardInterrupt:
            # As TensorFlow's SavedModel writer does with an error while it traces gradients: its traceback first.
            traceback.print_exc()
            raise TypeError("Flatten() failed") from None

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
    try:
        capfd.readouterr()
        code = cli.run(main, [])
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back
    finally:
        signal.signal(signal.SIGINT, previous)
    assert code == 130 and capfd.readouterr().err == "interrupted\n"
    with pytest.raises(TypeError):  # the same error without Ctrl-C is a bug, and keeps its traceback
        cli.run(lambda argv: (_ for _ in ()).throw(TypeError("a bug")), [])


def test_21_what_a_command_prints_after_ctrl_c_it_stops_for_still_reaches_the_user(capfd):
    """Predict stops a camera with Ctrl-C and then sums up: stderr held after the Ctrl-C is written out."""

    def main(argv):
        print("before", file=sys.stderr)
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        except KeyboardInterrupt:
            print("12 frames, 3 with an object", file=sys.stderr)
        return 0

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        capfd.readouterr()
        code = cli.run(main, [])
    finally:
        signal.signal(signal.SIGINT, previous)
    assert code == 0 and capfd.readouterr().err == "before\n12 frames, 3 with an object\n"
    assert sys.stderr is not None and not isinstance(sys.stderr, io.StringIO)  # put back


def test_21_training_stops_at_the_next_step_once_ctrl_c_was_noted(monkeypatch):
    # Ctrl-C that TensorFlow turned into another exception, caught on the way: the noted interrupt still ends fit.
    from locnet_tf.train import callbacks

    monkeypatch.setattr(cli, "_INTERRUPTS", [signal.SIGINT])  # one from an earlier command of this process
    stop = callbacks.StopOnCtrlC()
    stop.on_train_batch_end(0)  # none since the training began: it goes on
    cli._INTERRUPTS.append(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        stop.on_train_batch_end(1)
