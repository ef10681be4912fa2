"""The layout rules: no import cycles, and only bayes_glmm.bayes imports PyMC / nutpie / JAX / numba."""
import ast
import pathlib

import pytest

PKG = pathlib.Path(__file__).resolve().parents[1] / "bayes_glmm"
HEAVY = ("pymc", "pytensor", "nutpie", "jax", "numpyro", "numba", "bambi")


def _modname(path: pathlib.Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: pathlib.Path, module_level_only: bool):
    """(absolute module names imported, is_package) for one file."""
    tree = ast.parse(path.read_text())
    mod = _modname(path)
    pkg = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    out = []
    for node in nodes:
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.append(target)
            # "from . import x" may import a submodule
            out += [f"{target}.{a.name}" for a in node.names]
    return out


def _graph(module_level_only=True):
    files = sorted(PKG.rglob("*.py"))
    mods = {_modname(f): f for f in files}
    g = {m: set() for m in mods}
    for m, f in mods.items():
        for imp in _imports(f, module_level_only):
            if imp in mods and imp != m:
                g[m].add(imp)
    return g


def test_no_import_cycles():
    g = _graph(module_level_only=True)
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for n in g[m]:
            # a package's __init__ importing its own submodules is not a cycle back to it
            if state.get(n) == "open" and not m.startswith(n + "."):
                pytest.fail("import cycle: " + " -> ".join(stack[stack.index(n):] + [n]))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = "done"

    for m in sorted(g):
        if m not in state:
            visit(m)


def test_only_the_bayes_subpackage_imports_samplers():
    offenders = []
    for f in sorted(PKG.rglob("*.py")):
        mod = _modname(f)
        if mod.startswith("bayes_glmm.bayes"):
            continue
        for imp in _imports(f, module_level_only=False):
            if imp.split(".")[0] in HEAVY:
                offenders.append(f"{mod} imports {imp}")
    assert not offenders, offenders


def test_the_ml_path_does_not_import_the_bayesian_path():
    for f in sorted((PKG / "ml").rglob("*.py")):
        for imp in _imports(f, module_level_only=False):
            assert not imp.startswith("bayes_glmm.bayes"), (f, imp)
