"""Shared test fixtures and helpers."""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
# Real photos shipped beside the repo (see ../shared/data/caltech101_loc/README.md).
CALTECH = REPO.parent / "shared" / "data" / "caltech101_loc"


@pytest.fixture
def caltech_dir():
    if not (CALTECH / "annotations").is_dir():
        pytest.skip(f"real photos not found at {CALTECH} (../shared/data is absent)")
    return CALTECH
