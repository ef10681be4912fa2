"""The layout rules: no import cycles (counting imports inside functions), and only bayes_glmm.bayes imports PyMC / nutpie / JAX / numba."""
import ast
import pathlib

import pytest

PKG = pathlib.Path(__file__).resolve().parents[1] / "bayes_glmm"
HEAVY = ("pymc", "pytensor", "nutpie", "jax", "numpyro", "numba", "bambi")


def _modname(path: pathlib.Path, root: pathlib.Path = PKG) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: pathlib.Path):
    """Absolute names of everything one file imports, anywhere in it (inside functions too)."""
    tree = ast.parse(path.read_text())
    mod = _modname(path)
    pkg = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(tree):
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


def _modules(root: pathlib.Path) -> dict:
    """{module name: file} for every module under ``root``; packages without an
    ``__init__.py`` (namespace packages, or one being created) map to None."""
    mods = {_modname(f, root): f for f in sorted(root.rglob("*.py"))}
    for m in list(mods):
        while "." in m:
            m = m.rsplit(".", 1)[0]
            mods.setdefault(m, None)
    return mods


def _edges(path: pathlib.Path, mod: str, mods: dict):
    """``(imported module, line)`` for every import in ``path`` -- module level, inside functions,
    classes and ``if`` blocks alike -- resolved to the module whose code it runs:
    ``from pkg import name`` is an edge to ``pkg.name`` when that is a module, else to ``pkg``
    (whose ``__init__`` defines ``name``)."""
    pkg = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            targets = [f"{target}.{a.name}" if f"{target}.{a.name}" in mods else target for a in node.names]
        for t in targets:
            if t in mods and t != mod:
                yield t, node.lineno


def _graph(root: pathlib.Path = PKG) -> dict:
    """{module: {imported module: first line}} over all imports of the package at ``root``."""
    mods = _modules(root)
    g = {m: {} for m in mods}
    for m, f in mods.items():
        if f is not None:
            for t, line in _edges(f, m, mods):
                g[m].setdefault(t, line)
    return g


def _find_cycle(g: dict):
    """One import cycle of ``g`` as ``[(module, line), ...]`` back to its first module, or None.

    A package importing its own submodules is an ordinary edge; a submodule importing a name
    from its package's ``__init__`` that imports it back is a cycle like any other."""
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for n in sorted(g[m]):
            if state.get(n) == "open":
                loop = stack[stack.index(n):] + [n]
                return [(a, g[a][b]) for a, b in zip(loop, loop[1:])]
            if n not in state:
                found = visit(n)
                if found:
                    return found
        stack.pop()
        state[m] = "done"
        return None

    for m in sorted(g):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def _describe(cycle) -> str:
    return " -> ".join(f"{m} (line {line})" for m, line in cycle) + f" -> {cycle[0][0]}"


def test_no_import_cycles_counting_function_level_imports():
    cycle = _find_cycle(_graph())
    assert cycle is None, "import cycle (the line is where each module imports the next): " + _describe(cycle)


def test_the_cycle_finder_sees_imports_inside_functions(tmp_path):
    # a cycle hidden in a function-level "from . import x" and a name imported from a package's
    # __init__ are what the module-level-only check missed
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from .a import f\n")
    (pkg / "a.py").write_text("def f():\n    from . import b\n    return b.g()\n")
    (pkg / "b.py").write_text("import numpy\n\ndef g():\n    from .a import f\n    return f\n")
    (pkg / "sub" / "__init__.py").write_text("from .c import h\n")
    (pkg / "sub" / "c.py").write_text("def h():\n    from . import K\n    return K\n")
    g = _graph(pkg)
    assert g["pkg.a"] == {"pkg.b": 2} and g["pkg.sub.c"] == {"pkg.sub": 2}
    cycle = _find_cycle(g)
    assert [m for m, _ in cycle] == ["pkg.a", "pkg.b"]
    assert _describe(cycle) == "pkg.a (line 2) -> pkg.b (line 4) -> pkg.a"
    (pkg / "b.py").write_text("def g():\n    return 1\n")
    cycle = _find_cycle(_graph(pkg))
    assert [m for m, _ in cycle] == ["pkg.sub", "pkg.sub.c"]
    (pkg / "sub" / "c.py").write_text("K = 1\n\ndef h():\n    return K\n")
    assert _find_cycle(_graph(pkg)) is None


def test_only_the_bayes_subpackage_imports_samplers():
    offenders = []
    for f in sorted(PKG.rglob("*.py")):
        mod = _modname(f)
        if mod.startswith("bayes_glmm.bayes"):
            continue
        for imp in _imports(f):
            if imp.split(".")[0] in HEAVY:
                offenders.append(f"{mod} imports {imp}")
    assert not offenders, offenders


def test_the_ml_path_does_not_import_the_bayesian_path():
    for f in sorted((PKG / "ml").rglob("*.py")):
        for imp in _imports(f):
            assert not imp.startswith("bayes_glmm.bayes"), (f, imp)
