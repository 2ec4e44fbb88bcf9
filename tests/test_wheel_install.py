"""The wheel `make wheel` builds installs the device runtime alone, and predicts as this venv does.

README "Install": the wheel is built in the clone and copied to the device, where
`pip install locnet_tf-VERSION-py3-none-any.whl` brings the base install (numpy, Pillow,
simplejpeg, LiteRT, PyAV, tqdm, the serve app's libraries) and no TensorFlow. These tests build it
from a copy of the working tree (with a `runs/` and `export/` planted in it, as a user's clone
has them), check what it holds, install it into a fresh venv (no system site packages; pip
fetches the dependencies from the package registry, through its cache) and run the commands
there, from a folder outside the repo so that only the installed package can be imported. They
skip, saying why, only where the registry cannot be reached.
"""

import json
import math
import os
import pathlib
import re
import shutil
import subprocess
import sys
import zipfile

import av
import numpy as np
import pytest
from PIL import Image

import locnet_tf

pytestmark = pytest.mark.slow

REPO = pathlib.Path(__file__).resolve().parents[1]
# What a clone may hold beside its sources: not copied to the folder the wheel is built in.
_NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv", "venv", "build", "dist", "*.egg-info", "__pycache__", ".ruff_cache"
)


def NOT_SOURCES(folder, names):
    """What the copy of the tree leaves out: caches and builds anywhere, and a user's runs/ and
    export/ at the top only (`locnet_tf/export/` is the export package)."""
    top = {"runs", "export"} & set(names) if pathlib.Path(folder) == REPO else set()
    return set(_NOT_SOURCES(folder, names)) | top


# pip's words when it cannot reach the package registry: the test then skips instead of failing.
OFFLINE = re.compile(
    r"NewConnectionError|Failed to establish a new connection|Temporary failure in name resolution"
    r"|Name or service not known|Network is unreachable|ConnectTimeout|ProxyError|Could not fetch URL"
)
# Distributions of the train extra: none may come with the base install.
TRAIN_ONLY = {"tensorflow", "tensorflow-cpu", "tf-keras", "keras", "tensorflow-datasets", "matplotlib", "tensorboard"}


def _env(**extra):
    """This process's environment without what would let a child import the repo's code or this venv's.

    (Nor an outer `make test`'s flags, which would reach the `make wheel` run here.)
    """
    dropped = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    return {**env, "TF_CPP_MIN_LOG_LEVEL": "3", **extra}


def _run(args, cwd, env=None, timeout=900):
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, cwd=cwd, env=env or _env(), timeout=timeout
    )


def _pip(args, cwd, what):
    """Runs a pip command that reaches the registry; skips if it cannot, fails with pip's output otherwise."""
    result = _run(args, cwd)
    if result.returncode != 0:
        output = result.stdout + result.stderr
        offline = OFFLINE.search(output)
        if offline:
            pytest.skip(f"{what}: the package registry cannot be reached (pip: {offline.group(0)})")
        pytest.fail(f"{what} failed:\n{output[-4000:]}")
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The wheel `make wheel` builds from a copy of this tree, and that copy."""
    source = tmp_path_factory.mktemp("clone") / "locnet_tf"
    shutil.copytree(REPO, source, ignore=NOT_SOURCES)
    # A user's clone holds runs and exports (models, big files): they must stay out of the wheel.
    for planted in ("runs/road/model.keras", "export/road/model_int8.tflite", "dist/old.txt"):
        (source / planted).parent.mkdir(parents=True, exist_ok=True)
        (source / planted).write_bytes(b"not part of the package")
    if shutil.which("make"):
        command = ["make", "--no-print-directory", "wheel", f"PYTHON={sys.executable}"]
    else:  # the Makefile's recipe, where there is no make
        command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", "dist", "."]
    _pip(command, source, "building the wheel")
    wheels = sorted((source / "dist").glob("*.whl"))
    assert [w.name for w in wheels] == [f"locnet_tf-{locnet_tf.__version__}-py3-none-any.whl"]
    return {"path": wheels[0], "source": source}


def test_the_wheel_holds_the_package_and_its_data_and_nothing_else(wheel):
    source, version = wheel["source"], locnet_tf.__version__
    with zipfile.ZipFile(wheel["path"]) as archive:
        names = set(archive.namelist())
        # Only the package and the wheel's own metadata (no tests/, runs/, export/, examples/, notebooks/).
        outside = sorted(n for n in names if n.split("/")[0] not in ("locnet_tf", f"locnet_tf-{version}.dist-info"))
        assert outside == []
        assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
        # Every module, in every sub-package (a folder of modules without an __init__.py would be left out).
        modules = {p.relative_to(source).as_posix() for p in (source / "locnet_tf").rglob("*.py")}
        assert modules - names == set()
        # The package data, wherever in the package it lives, byte for byte.
        data = [
            p
            for folder in ("weights", "serve_static")
            for p in (source / "locnet_tf").rglob(f"{folder}/*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".py"
        ]
        assert {p.name for p in data} >= {
            "procedural.keras",
            "efficientnet_lite0.weights.h5",
            "NOTICE-efficientnet_lite0",
            "index.html",
            "app.js",
            "style.css",
        }
        for path in data:
            name = path.relative_to(source).as_posix()
            assert name in names, f"{name} is not in the wheel"
            assert archive.read(name) == path.read_bytes(), name
        metadata = archive.read(f"locnet_tf-{version}.dist-info/METADATA").decode()
    requires = [line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    base = {re.split(r"[ <>=!;\[]", r)[0].lower() for r in requires if "extra ==" not in r}
    assert base == {
        "numpy",
        "pillow",
        "simplejpeg",
        "ai-edge-litert",
        "av",
        "tqdm",
        "starlette",
        "uvicorn",
        "python-multipart",
    }
    assert not base & TRAIN_ONLY


def _photos(folder):
    """A PNG, a JPEG stored sideways (EXIF orientation) and a short H.264 video."""
    folder.mkdir()
    rng = np.random.default_rng(7)
    pixels = np.asarray(Image.fromarray(rng.integers(0, 256, (12, 18, 3), dtype=np.uint8)).resize((140, 90)))
    Image.fromarray(pixels).save(folder / "photo.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees to show"
    Image.fromarray(pixels).save(folder / "sideways.jpg", quality=95, exif=exif.tobytes())
    with av.open(str(folder / "clip.mp4"), mode="w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.height, stream.width, stream.pix_fmt = 64, 96, "yuv420p"
        for i in range(6):
            frame = np.roll(np.asarray(Image.fromarray(pixels).resize((96, 64))), 8 * i, axis=1)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        container.mux(stream.encode())
    return [folder / "photo.png", folder / "sideways.jpg", folder / "clip.mp4"]


def _same(a, b, where):
    """Equal JSON values, floats to 1e-5 (the two venvs may hold other patch releases of numpy/Pillow/LiteRT)."""
    if isinstance(a, float) or isinstance(b, float):
        assert math.isclose(a, b, rel_tol=0, abs_tol=1e-5), (where, a, b)
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), (where, a, b)
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}[{i}]")
    else:
        assert a == b, (where, a, b)


def test_the_wheel_installs_the_runtime_alone_and_predicts_as_this_venv(wheel, smoke, tmp_path):
    venv = tmp_path / "device"
    result = _run([sys.executable, "-m", "venv", venv], tmp_path)  # no system site packages
    assert result.returncode == 0, result.stderr
    python = venv / "bin" / "python"
    _pip([python, "-m", "pip", "install", "--retries", "1", wheel["path"]], tmp_path, "installing the wheel")

    # What is there: the package from the wheel (not the repo), the base install, no TensorFlow.
    probe = (
        "import importlib.metadata as m, importlib.util, json, locnet_tf\n"
        "print(json.dumps({'file': locnet_tf.__file__, 'version': locnet_tf.__version__,"
        " 'installed': m.version('locnet_tf'),"
        " 'dists': sorted(d.metadata['Name'].lower().replace('_', '-') for d in m.distributions()),"
        " 'importable': [n for n in ('tensorflow', 'keras', 'tensorflow_datasets') if importlib.util.find_spec(n)]}))"
    )
    result = _run([python, "-c", probe], tmp_path)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert pathlib.Path(found["file"]).resolve().is_relative_to(venv.resolve()), found["file"]
    assert found["version"] == found["installed"] == locnet_tf.__version__
    assert found["importable"] == []
    assert not set(found["dists"]) & TRAIN_ONLY, found["dists"]
    assert {"numpy", "pillow", "ai-edge-litert", "av"} <= set(found["dists"])
    result = _run([python, "-m", "pip", "check"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr

    # The device's predictions equal this venv's, row for row, on pictures and a video.
    model = tmp_path / "model_int8.tflite"  # copied alone, as to a device: its metadata is inside
    shutil.copy(smoke["export"] / "model_int8.tflite", model)
    sources = _photos(tmp_path / "photos")
    rows, outs = {}, {}
    here = _env(PYTHONPATH=str(REPO))  # this venv, the repo's code
    for name, interpreter, env in (("device", python, _env()), ("here", sys.executable, here)):
        outs[name] = tmp_path / f"out_{name}"
        result = _run(
            [interpreter, "-m", "locnet_tf.predict", model, *sources, "--threads", "1", "--out", outs[name]],
            tmp_path,
            env,
        )
        assert result.returncode == 0, (name, result.stderr[-3000:])
        assert "Traceback" not in result.stderr, (name, result.stderr)
        rows[name] = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows["device"]) == 2 + 6  # two pictures, six frames
    assert [row["source"] for row in rows["device"]] == [str(sources[0]), str(sources[1])] + [str(sources[2])] * 6
    assert rows["device"][1]["image_size"] == [140, 90]  # the JPEG as shown, turned
    for i, (device, here_row) in enumerate(zip(rows["device"], rows["here"], strict=True)):
        assert device.keys() == here_row.keys(), i
        for key in device:
            if key in ("picture", "video"):  # each run writes into its own --out folder
                _same(
                    pathlib.Path(device[key]).relative_to(outs["device"]).as_posix(),
                    pathlib.Path(here_row[key]).relative_to(outs["here"]).as_posix(),
                    f"row {i} {key}",
                )
            else:
                _same(device[key], here_row[key], f"row {i} {key}")
    written = sorted(p.name for p in outs["device"].iterdir() if not p.name.startswith("."))
    assert written == sorted(p.name for p in outs["here"].iterdir() if not p.name.startswith("."))
    assert written == ["clip.mp4", "photo.png", "sideways.png"]
    with av.open(str(outs["device"] / "clip.mp4")) as annotated:
        assert sum(1 for _ in annotated.decode(video=0)) == 6

    # The commands that need TensorFlow say what to install, in one line; the serve command starts up.
    for command in ("locnet_tf.train", "locnet_tf.evaluate", "locnet_tf.export", "locnet_tf.data"):
        result = _run([python, "-m", command, "--help"], tmp_path)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode == 1 and len(lines) == 1, (command, result.stderr)
        assert lines[0].startswith(f"error: python -m {command} needs tensorflow and keras"), lines
        assert lines[0].endswith('install the train extra (in the clone: pip install ".[train]")'), lines
    result = _run([python, "-m", "locnet_tf.serve", "--help"], tmp_path)
    assert result.returncode == 0 and "usage: python -m locnet_tf.serve" in result.stdout, result.stderr
