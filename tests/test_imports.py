"""The package's import structure: no cycles among its modules' top-level imports.

(Imports inside functions are how heavy or optional dependencies load late; a
cycle at the top level breaks whichever module is imported first.)
"""

import ast
import pathlib

from conftest import REPO


def _top_level_imports(path, modules):
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("locnet_tf"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in modules else node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("locnet_tf"))
    return found


def test_no_import_cycles():
    modules = {}
    for path in (REPO / "locnet_tf").rglob("*.py"):
        name = ".".join(path.relative_to(REPO).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    graph = {
        name: {m for m in _top_level_imports(path, modules) if m in modules and m != name}
        for name, path in modules.items()
    }
    done, path_stack = set(), []

    def visit(name):
        if name in path_stack:
            cycle = path_stack[path_stack.index(name) :] + [name]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if name in done:
            return
        path_stack.append(name)
        for dependency in sorted(graph[name]):
            visit(dependency)
        path_stack.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)


def test_plots_draw_and_do_not_evaluate():
    # evaluate computes (report, IoUs, rankings) and asks plots to draw: one direction only.
    source = pathlib.Path(REPO / "locnet_tf" / "plots.py").read_text()
    assert "locnet_tf.evaluate" not in source and "import evaluate" not in source


def test_version_is_the_changelogs_newest():
    import locnet_tf

    changelog = (REPO / "CHANGELOG.md").read_text()
    # "## Unreleased" (changes not yet in a version) may come first.
    newest = next(line for line in changelog.splitlines() if line.startswith("## ") and line != "## Unreleased")
    assert newest == f"## {locnet_tf.__version__}"
