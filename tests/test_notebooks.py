"""The notebooks run top to bottom in smoke mode, use only the public API, and are committed clean.

Each notebook runs in its own Jupyter kernel (this interpreter's `python3` kernel) with
`LOCNET_SMOKE=1`, writing into the test's tmp folder (`LOCNET_NOTEBOOK_OUT`, and
`LOCNET_DATA_DIR` for the TFDS data). A failing cell fails the test with its traceback; the
executed notebook is saved beside the outputs for a look.
"""

import re
import sys

import pytest

from conftest import REPO

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

# Each notebook starts a kernel and trains: slow (`make test` runs them, `make test-fast` does not).
pytestmark = pytest.mark.slow

NOTEBOOKS = REPO / "notebooks"
NAMES = ("01_target_and_loss.ipynb", "02_train.ipynb", "03_export_and_tflite.ipynb")


def _code_cells(name):
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def test_every_notebook_is_tested():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(NAMES)


def test_python3_kernel_runs_this_interpreter():
    # The kernelspec says "python"; jupyter_client replaces that with sys.executable,
    # so the notebooks run in the virtualenv that runs the tests.
    from jupyter_client.manager import KernelManager

    command = KernelManager(kernel_name="python3").format_kernel_cmd()
    assert command[0] == sys.executable and "ipykernel_launcher" in command


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_committed_without_outputs(name):
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    for index, cell in enumerate(_code_cells(name)):
        assert cell.outputs == [] and cell.execution_count is None, f"{name}: code cell {index} has outputs"


@pytest.mark.parametrize("name", NAMES)
def test_notebook_uses_only_the_public_api(name):
    for cell in _code_cells(name):
        private = re.findall(r"\._[A-Za-z]\w*|import _\w+|from locnet_tf\S* import .*\b_[a-z]\w*", cell.source)
        assert not private, f"{name} uses private names: {private}"


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_in_smoke_mode(name, tmp_path, monkeypatch):
    # The kernel inherits this environment.
    monkeypatch.setenv("LOCNET_SMOKE", "1")
    monkeypatch.setenv("LOCNET_NOTEBOOK_OUT", str(tmp_path / "out"))
    monkeypatch.setenv("LOCNET_DATA_DIR", str(tmp_path / "tfds"))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.delenv("LOCNET_MODEL", raising=False)
    monkeypatch.delenv("LOCNET_PRESET", raising=False)
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(
        notebook, kernel_name="python3", timeout=600, resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    try:
        client.execute()
    finally:
        nbformat.write(notebook, tmp_path / name)
    assert (tmp_path / "out" / "smoke").is_dir()
    pictures = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if "image/png" in output.get("data", {})
    ]
    assert pictures, f"{name} showed no picture"
