"""The package's import structure: no cycles among its modules' imports, at any depth.

Imports inside functions count (docs/architecture.md: a late import is still an import, it
only hides the cycle until run time); they are listed by `tests/test_layers.py`'s `all_imports`.
"""

import pathlib

from conftest import REPO
from test_layers import all_imports, import_circles

# Circles allowed, each with the reason (none since the move of issue 28: keep it so).
KNOWN_CIRCLES = []


def test_no_import_cycles():
    items = all_imports()
    circles = import_circles(items)
    new = [circle for circle in circles if circle not in KNOWN_CIRCLES]
    assert not new, "import circles (modules that reach each other through imports, at any depth):\n" + "\n".join(
        "  " + " -> ".join(circle) for circle in new
    )
    gone = [circle for circle in KNOWN_CIRCLES if circle not in circles]
    assert not gone, f"these circles are gone: remove them from KNOWN_CIRCLES in this file: {gone}"
    # At module level there is none at all: a cycle there breaks whichever module is imported first.
    assert import_circles([item for item in items if not item.in_function]) == []


def test_the_cycle_check_sees_imports_inside_functions(tmp_path):
    package = tmp_path / "locnet_tf"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "config.py").write_text("def validate():\n    from locnet_tf import model\n")
    (package / "model.py").write_text("from locnet_tf import config\n")
    assert import_circles(all_imports(tmp_path)) == [["locnet_tf.config", "locnet_tf.model"]]


def test_figures_draw_and_do_not_evaluate():
    # evaluate computes (report, IoUs, rankings) and asks the figures to draw: one direction only.
    source = pathlib.Path(REPO / "locnet_tf" / "core" / "figures.py").read_text()
    assert "locnet_tf.evaluate" not in source and "import evaluate" not in source


def test_version_is_the_changelogs_newest():
    import locnet_tf

    changelog = (REPO / "CHANGELOG.md").read_text()
    # "## Unreleased" (changes not yet in a version) may come first.
    newest = next(line for line in changelog.splitlines() if line.startswith("## ") and line != "## Unreleased")
    assert newest == f"## {locnet_tf.__version__}"
