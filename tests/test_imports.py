"""gdcore's modules import one another one way: no cycles, kernels below the rest.

Every import statement counts, those inside functions too (a lazy import is
a cycle put off, not removed).  The graph is read from the source with
``ast``, so the test sees what a reader of the code sees.
"""

import ast
from pathlib import Path

import gdcore

ROOT = Path(gdcore.__file__).parent


def module_name(path):
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}


def imports_of(name):
    """The gdcore modules ``name`` imports, anywhere in its source."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                full = f"{target}.{alias.name}"
                found.add(full if full in MODULES else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: imports_of(name) for name in MODULES}


def cycles(graph):
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_reader_sees_the_imports_it_should():
    """The graph is read right: a few edges known from the code."""
    assert "gdcore.optim" in GRAPH["gdcore.minimize"]
    assert "gdcore.drivers" in GRAPH["gdcore.optim"]
    assert "gdcore.kernels.updates" in GRAPH["gdcore.optim"]
    assert "gdcore.codes" in GRAPH["gdcore.kernels.minimize_loops"]


def test_no_module_imports_itself_back():
    assert cycles(GRAPH) == []


def test_cycles_are_found():
    """The cycle finder itself, on a graph with one cycle and a tail."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_kernels_import_nothing_above_them_but_the_codes():
    """Kernels are the bottom layer: they share the integer codes, nothing else.

    (``_aot`` names the compile notice when it falls back to the JIT.)
    """
    allowed = {"gdcore.codes", "gdcore._compile_notice"}
    for name, imported in GRAPH.items():
        if name.startswith("gdcore.kernels"):
            above = {m for m in imported if not m.startswith("gdcore.kernels")} - allowed
            assert not above, f"{name} imports {sorted(above)}"


def test_rules_drivers_and_minimize_are_layered():
    """kernels <- drivers (SciPy contract) <- optim (rules) <- minimize (methods, minimize)."""
    assert "gdcore.optim" not in GRAPH["gdcore.drivers"]
    assert "gdcore.minimize" not in GRAPH["gdcore.drivers"]
    assert "gdcore.minimize" not in GRAPH["gdcore.optim"]
