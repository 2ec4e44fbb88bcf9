"""The floors of docs/architecture.md: which imports of package modules go up a floor (issue 28).

Every import of a `locnet_tf` module is listed, at any depth (module level and inside
functions, where `tests/test_imports.py` does not look), together with
`importlib.import_module("locnet_tf...")` calls on a literal name. Each module has a floor
(`FLOOR_OF`, the table of docs/architecture.md); an import is *upward* when the imported
module sits on a higher floor, or on a sibling floor (train <-> export).

The ratchet: the count (`UPWARD_TODAY`, 0) may not grow.

    python tests/test_layers.py          # every upward import, the count per floor, the circles
    python tests/test_layers.py --all    # every import of a package module, with its floors

Blind spot: names built at run time (`locnet_tf/__init__.py`'s `_LAZY` and `_MOVED` tables,
the one place allowed to import by a computed name) are not literal, so not listed.
"""

import ast
import collections
import dataclasses
import sys

from conftest import REPO

PACKAGE = "locnet_tf"

# The count of upward imports: 0 since issue 28; it may not grow.
UPWARD_TODAY = 0

# Floors from the bottom. `runtime` is drawn beside the Keras core (it imports only the numpy
# core) but ranks below it, so that the floors above may use it: the predictor facade runs
# `.tflite` files with it, export writes its metadata, the synthetic clip writer uses its video
# writer. `train` and `export` share a rank and may not import each other.
RANK = {"core": 0, "runtime": 1, "keras": 2, "data": 3, "evaluate": 4, "train": 5, "export": 5, "apps": 6}

# Each sub-package -> its floor (docs/architecture.md); a module takes the floor of its nearest
# listed package. The package itself counts only for itself: a new top-level module must be placed.
FLOOR_OF = {
    "locnet_tf": "core",
    "locnet_tf.core": "core",
    "locnet_tf.runtime": "runtime",
    "locnet_tf.model": "keras",
    "locnet_tf.data": "data",
    "locnet_tf.evaluate": "evaluate",
    "locnet_tf.train": "train",
    "locnet_tf.export": "export",
    "locnet_tf.predict": "apps",
    "locnet_tf.serve": "apps",
    "locnet_tf.demo": "apps",
    # Shims at the old paths of moved modules: top floor (they import down); they go in 0.4.0.
    "locnet_tf.boxes": "apps",
    "locnet_tf.config": "apps",
    "locnet_tf.draw": "apps",
    "locnet_tf.images": "apps",
    "locnet_tf.inference": "apps",
    "locnet_tf.losses": "apps",
    "locnet_tf.pretrained": "apps",
    "locnet_tf.recipe": "apps",
    "locnet_tf.smoothing": "apps",
    "locnet_tf.target": "apps",
    "locnet_tf.data.synthetic_video": "apps",
}


@dataclasses.dataclass(frozen=True)
class Import:
    importer: str  # module doing the import
    target: str  # package module imported (a package for `from pkg import name` of a non-module)
    line: int
    in_function: bool  # inside a def (or a class body's def): loads late, still an import

    def __str__(self):
        where = "in a function" if self.in_function else "module level"
        return (
            f"{self.importer}:{self.line} ({floor_of(self.importer)}) -> {self.target} "
            f"({floor_of(self.target)}), {where}"
        )


def package_modules(root=REPO):
    """Module name -> path of every `.py` file of the package."""
    modules = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        name = ".".join(path.relative_to(root).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    return modules


def floor_of(module):
    """The floor of a module: its own entry in `FLOOR_OF`, else its nearest listed package's."""
    name = module
    while name != PACKAGE:  # the package itself counts only for itself: a new module must be placed
        if name in FLOOR_OF:
            return FLOOR_OF[name]
        name = name.rpartition(".")[0]
    if module == PACKAGE:
        return FLOOR_OF[PACKAGE]
    raise KeyError(module)


def _literal_import_module(node):
    # importlib.import_module("locnet_tf.x") / import_module("locnet_tf.x") with a literal name.
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name != "import_module" or not node.args:
        return None
    first = node.args[0]
    return first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None


def imports_of(name, source, modules, is_package=False):
    """Every import of a package module in one module's source, at any depth.

    `from locnet_tf.data import pipeline` and `from locnet_tf.model import boxes as b` name the
    module (`locnet_tf.data.pipeline`, `locnet_tf.model.boxes`); `from locnet_tf.core.records import IMAGE`
    names `locnet_tf.core.records`; relative imports are resolved against `name`.
    """
    tree = ast.parse(source)
    package = name if is_package else name.rpartition(".")[0]
    found = set()

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            targets = []
            if isinstance(child, ast.Import):
                targets = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = package.split(".")
                    parts = parts[: len(parts) - (child.level - 1)]
                    base = ".".join(parts + ([base] if base else []))
                for alias in child.names:
                    full = f"{base}.{alias.name}"
                    targets.append(full if full in modules else base)
            elif isinstance(child, ast.Call):
                literal = _literal_import_module(child)
                if literal:
                    targets = [literal]
            for target in targets:
                if (target == PACKAGE or target.startswith(PACKAGE + ".")) and target != name:
                    found.add(Import(name, target, child.lineno, in_function))
            visit(child, inner)

    visit(tree, False)
    return found


def all_imports(root=REPO):
    """Every import of a package module by a package module, sorted by importer and line."""
    modules = package_modules(root)
    found = set()
    for name, path in modules.items():
        found |= imports_of(name, path.read_text(), modules, is_package=path.name == "__init__.py")
    return sorted(found, key=lambda i: (i.importer, i.line, i.target))


def is_upward(item):
    low, high = floor_of(item.importer), floor_of(item.target)
    return RANK[high] > RANK[low] or (RANK[high] == RANK[low] and high != low)


def found_upward(items):
    return [item for item in items if is_upward(item)]


def upward_imports(root=REPO):
    return found_upward(all_imports(root))


def import_circles(items):
    """Groups of modules that reach each other through imports at any depth (strongly connected)."""
    graph = collections.defaultdict(set)
    for item in items:
        # Python runs `locnet_tf/__init__.py` before any of its modules: an import of the bare
        # package (`from locnet_tf import __version__`) closes no circle.
        if item.target != PACKAGE:
            graph[item.importer].add(item.target)

    def reach(start):
        seen, todo = set(), [start]
        while todo:
            for nxt in graph[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        return seen

    reachable = {name: reach(name) for name in list(graph)}
    circles = {
        frozenset([name] + [other for other in reachable[name] if name in reachable.get(other, ())])
        for name in reachable
        if name in reachable[name]
    }
    return sorted(sorted(circle) for circle in circles)


def test_every_module_has_a_floor():
    missing = []
    for name in package_modules():
        try:
            floor_of(name)
        except KeyError:
            missing.append(name)
    assert not missing, f"modules with no floor (add them to FLOOR_OF as docs/architecture.md says): {missing}"
    assert set(FLOOR_OF.values()) <= set(RANK)


def test_upward_imports_do_not_grow():
    upward = upward_imports()
    listing = "\n".join(f"  {item}" for item in upward)
    assert len(upward) <= UPWARD_TODAY, (
        f"{len(upward)} imports go up a floor, {UPWARD_TODAY} allowed (docs/architecture.md: "
        f"no module imports one above it, at any depth):\n{listing}"
    )
    assert len(upward) == UPWARD_TODAY, (
        f"only {len(upward)} upward imports left: lower UPWARD_TODAY to {len(upward)} in this file\n{listing}"
    )


def test_the_listing_sees_every_kind_of_import(tmp_path):
    # A made-up package: each way of importing a module must be listed.
    package = tmp_path / PACKAGE
    (package / "data").mkdir(parents=True)
    (package / "core").mkdir()
    for name in ("__init__", "core/__init__", "core/cli", "core/records", "model", "evaluate", "data/__init__"):
        (package / f"{name}.py").write_text("")
    (package / "data" / "pipeline.py").write_text(
        "import os\n"
        "from locnet_tf.core.records import IMAGE\n"  # a name from a module
        "from ..core import records\n"  # relative, one package up
        "from ..core import cli\n"
        "def f():\n"
        "    from locnet_tf import model as m\n"  # a module named from its package, inside a function
        "    import locnet_tf.evaluate\n"
        "class C:\n"
        "    def g(self):\n"
        "        return importlib.import_module('locnet_tf.model')\n"
    )
    found = {(i.importer, i.target, i.line, i.in_function) for i in all_imports(tmp_path)}
    pipeline = "locnet_tf.data.pipeline"
    assert found == {
        (pipeline, "locnet_tf.core.records", 2, False),
        (pipeline, "locnet_tf.core.records", 3, False),
        (pipeline, "locnet_tf.core.cli", 4, False),
        (pipeline, "locnet_tf.model", 6, True),
        (pipeline, "locnet_tf.evaluate", 7, True),
        (pipeline, "locnet_tf.model", 10, True),
    }
    upward = {(i.target, i.line) for i in found_upward(all_imports(tmp_path))}
    # data -> evaluate goes up; data -> Keras core (model) and numpy core (cli, records) do not.
    assert upward == {("locnet_tf.evaluate", 7)}


def test_the_input_errors_import_nothing_of_the_package():
    # core/errors.py is the bottom of the bottom floor: every module that raises or catches an input
    # error imports it, so it may import no package module (not even another core one).
    errors = [item for item in all_imports() if item.importer == f"{PACKAGE}.core.errors"]
    assert errors == [], "\n".join(str(item) for item in errors)


def test_sibling_floors_count_as_upward():
    assert is_upward(Import("locnet_tf.export", "locnet_tf.train", 1, False))
    assert not is_upward(Import("locnet_tf.train", "locnet_tf.train.callbacks", 1, False))
    assert is_upward(Import("locnet_tf.runtime", "locnet_tf.model", 1, True))


def main(argv):
    items = all_imports()
    shown = items if "--all" in argv else found_upward(items)
    for item in shown:
        print(("UP   " if is_upward(item) else "     ") + str(item))
    upward = found_upward(items)
    counts = collections.Counter(floor_of(i.importer) for i in upward)
    inner = sum(i.in_function for i in items)
    print(f"\n{len(items)} imports of package modules ({inner} inside functions); {len(upward)} upward", end="")
    print(" (" + ", ".join(f"from {floor}: {n}" for floor, n in sorted(counts.items())) + ")" if counts else "")
    for circle in import_circles(items):
        print("circle (modules that import each other, at any depth): " + ", ".join(circle))


if __name__ == "__main__":
    main(sys.argv[1:])
