"""Shared test fixtures and helpers."""

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
