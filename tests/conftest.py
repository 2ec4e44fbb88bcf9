"""Shared test fixtures: the smoke export, a TFDS folder, the real photos.

Shared plain helpers are in helpers.py. Each pytest-xdist worker builds a
session fixture once.
"""

import atexit
import os
import pathlib
import shutil
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The image checks' cache (locnet_tf.data.check_cache): the tests' own, not the user's.
_CACHE_DIR = tempfile.mkdtemp(prefix="locnet_tf-test-checks-")
atexit.register(shutil.rmtree, _CACHE_DIR, True)
os.environ.setdefault("LOCNET_TF_CHECK_CACHE", os.path.join(_CACHE_DIR, "image_checks.sqlite3"))

import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
# Real photos shipped beside the repo (see ../shared/data/caltech101_loc/README.md).
CALTECH = REPO.parent / "shared" / "data" / "caltech101_loc"


@pytest.fixture
def caltech_dir():
    if not (CALTECH / "annotations").is_dir():
        pytest.skip(f"real photos not found at {CALTECH} (../shared/data is absent)")
    return CALTECH


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """A TFDS folder of the tests' own (synthetic/tiny is generated there on first use)."""
    return str(tmp_path_factory.mktemp("tfds"))


@pytest.fixture(scope="session")
def smoke(tmp_path_factory):
    """A smoke-trained `.keras` model and its complete export (built once per process).

    Returns:
        dict with `root`, `model` (the .keras path), `export` (the export
        folder), `data_dir` (TFDS folder of synthetic/tiny) and `metadata`.
    """
    import keras

    from helpers import SMOKE_IMAGE_SIZE, SMOKE_SPEC
    from locnet_tf.export import run as export
    from locnet_tf.model import network as model_lib
    from locnet_tf.data import pipeline

    root = tmp_path_factory.mktemp("smoke_export")
    data_dir = str(root / "tfds")
    keras.utils.set_random_seed(0)
    model = model_lib.build_model(image_size=SMOKE_IMAGE_SIZE, filters=(8, 16, 16, 32), depths=(1, 1, 1))
    model_lib.compile_model(model, jit_compile=False)
    train = pipeline.make_dataset(SMOKE_SPEC, "train", image_size=SMOKE_IMAGE_SIZE, batch_size=16, data_dir=data_dir)
    model.fit(train, epochs=8, verbose=0, shuffle=False)  # the dataset shuffles itself
    model_path = root / "run" / "model.keras"
    model_path.parent.mkdir()
    model.save(model_path)
    out = root / "export" / "smoke"
    metadata = export.export_model(
        model_path, out, data=SMOKE_SPEC, data_dir=data_dir, calibration_samples=32, verbose=False
    )
    return {"root": root, "model": model_path, "export": out, "data_dir": data_dir, "metadata": metadata}
