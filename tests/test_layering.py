"""The import direction of docs/architecture.md, pinned: each layer imports only
the layers before it, and the import graph has no cycle.

Read from the source with ``ast`` (nothing is imported), so a violation names
the file and line. Imports inside functions count like any other: one cannot
dodge a cycle or point upwards by hiding in a function."""

import ast
import re
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parent.parent

#: layers, ground first; a module belongs to the first pattern it matches
LAYERS = [
    ("ground", r"qnnfab(\.(errors|kinds|cache|npzfile|folding|fifo_sizing|netconfig|plan|weights_image|weight_layout"
               r"|overlay_map|packing|children))?$"),
    ("on-board driver", r"qnnfab\.boards\.onboard(\..*)?$"),
    ("models", r"qnnfab\.(golden|train|interop)(\..*)?$"),
    ("rtl", r"qnnfab\.rtl(\..*)?$"),
    ("sim", r"qnnfab\.sim(\..*)?$"),
    ("boards", r"qnnfab\.boards(\..*)?$"),
    ("flow", r"qnnfab\.(flow|demo|training)(\..*)?$"),
    ("command line", r"qnnfab\.(cli|commands|__main__)(\..*)?$"),
]

def _packages():
    """``{package: folder}`` of every package pyproject.toml installs."""
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    dirs = tool["package-dir"]
    out = {}
    for pkg in tool["packages"]:
        parent = pkg
        while parent not in dirs:       # a package below a mapped one lies in its folder
            parent = parent.rpartition(".")[0]
        out[pkg] = ROOT / dirs[parent] / pkg[len(parent):].lstrip(".").replace(".", "/")
    return out


def _modules():
    """``{module name: path}`` of every module of the project's packages."""
    mods = {}
    for pkg, folder in _packages().items():
        for path in folder.glob("*.py"):
            name = pkg if path.name == "__init__.py" else f"{pkg}.{path.stem}"
            mods[name] = path
    return mods


MODULES = _modules()


def _layer(module):
    for i, (_, pattern) in enumerate(LAYERS):
        if re.match(pattern, module):
            return i
    return None


def _target(name):
    """The project module an imported name lives in (None outside the project)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module):
    """``[(line, imported project module or outside name, inside a function)]`` of ``module``."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import):
                out.extend((child.lineno, a.name, in_function) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = package.split(".")
                    base = ".".join(parts[:len(parts) - child.level + 1] + ([base] if base else []))
                names = [f"{base}.{a.name}" for a in child.names]
                out.extend((child.lineno, _target(n) or base, in_function) for n in names)
            visit(child, inner)

    visit(tree, False)
    return out


def test_every_package_folder_is_installed():
    """A folder with an ``__init__.py`` below a package folder is a package pyproject.toml lists
    (else an installed qnnfab would lack it, and this test would not see its imports)."""
    folders = set(_packages().values())
    missing = [str(init.parent.relative_to(ROOT)) for folder in list(folders)
               for init in folder.rglob("__init__.py") if init.parent not in folders and ".venv" not in init.parts]
    assert missing == []


def test_every_module_has_a_layer():
    assert [m for m in MODULES if _layer(m) is None] == []


def test_each_layer_imports_only_the_layers_before_it():
    bad = []
    for module in MODULES:
        for line, name, _ in _imports(module):
            target = _target(name)
            if target and target != module and _layer(target) > _layer(module):
                bad.append(f"{MODULES[module].relative_to(ROOT)}:{line}: {module} ({LAYERS[_layer(module)][0]}) "
                           f"imports {target} ({LAYERS[_layer(target)][0]})")
    assert bad == []


def test_no_import_cycle():
    graph = {m: {t for _, n, _ in _imports(m) if (t := _target(n)) and t != m} for m in MODULES}
    state, cycles = {}, []

    def walk(m, stack):
        state[m] = "open"
        for t in sorted(graph[m]):
            if state.get(t) == "open":
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                walk(t, stack + [t])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            walk(m, [m])
    assert cycles == []


@pytest.mark.parametrize("probe", ["qnnfab.boards.onboard.driver", "qnnfab.netconfig"])
def test_the_probe_modules_exist(probe):
    """The layer table names real modules (a rename would silently empty a layer)."""
    assert probe in MODULES
