"""The package's shape: imports go one way through the layers, no module imports itself back, none is huge.

Every module under src/lamaml is parsed with ``ast``; every import in it (at module level or inside a
function, relative or absolute) becomes an edge to the lamaml module it loads. Layers, bottom up:

    errors, version, atomic, durations, hardware   importable by every layer; import nothing of lamaml but each other
    data -> models -> methods -> config -> engine -> experiments, cli, api

A module may import its own layer and the layers below it, never above.
"""
import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
MAX_LINES = 400
BOTTOM = {"errors", "version", "atomic", "durations", "hardware"}
LAYERS = {"errors": 0, "version": 0, "atomic": 0, "durations": 0, "hardware": 0, "data": 1, "models": 2, "methods": 3,
          "config": 4, "engine": 5, "experiments": 6, "cli": 6, "cli_parser": 6, "api": 6, "__main__": 6}
# Files being redesigned on another branch; a case may be excused here only when it comes from one of them.
PENDING_FILES = ("lamaml.methods", "lamaml.engine.loop", "lamaml.engine.run", "lamaml.engine.probes")
# being redesigned on branch main; remove when merged.
# Entries: ("lines", module), ("layer", "importer -> imported") or ("cycle", "a -> b -> a" as reported).
KNOWN_PENDING: list[tuple[str, str]] = []


def _modules() -> dict[str, tuple[Path, bool]]:
    """Dotted name -> (file, is a package's __init__)."""
    found = {}
    for path in sorted((SRC / "lamaml").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if package else parts)] = (path, package)
    return found


MODULES = _modules()


def _owner(name: str) -> str:
    """The module that loading ``name`` runs: itself, or the nearest enclosing module of an attribute."""
    while name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def imports_of(name: str) -> set[str]:
    """The lamaml modules ``name`` imports, at any depth of its code."""
    path, package = MODULES[name]
    here = name.split(".") if package else name.split(".")[:-1]      # the package relative imports start from
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets.update(_owner(a.name) for a in node.names if a.name.split(".")[0] == "lamaml")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.split(".")[0] != "lamaml":
                continue
            ancestor = name.startswith(source + ".")
            for alias in node.names:
                if f"{source}.{alias.name}" in MODULES:     # a submodule: loading it needs no more of source,
                    targets.add(f"{source}.{alias.name}")   # whose __init__ has run before the importer's
                    if not ancestor:
                        targets.add(_owner(source))
                else:                                       # an attribute of source's code
                    targets.add(_owner(source))
    targets.discard(name)
    return targets


GRAPH = {name: imports_of(name) for name in MODULES}


def layer_of(name: str) -> int | None:
    parts = name.split(".")
    return LAYERS["cli"] if len(parts) == 1 else LAYERS.get(parts[1])    # the root: the public face, on top


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle, as a path a -> ... -> a, through each group of modules that import each other."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node):    # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)
    for node in sorted(graph):
        if node not in index:
            visit(node)
    cycles = []
    for group in groups:    # a shortest way back to the group's first module, breadth first
        start = min(group)
        paths, seen = [[start]], {start}
        while paths:
            path = paths.pop(0)
            following = sorted(n for n in graph.get(path[-1], ()) if n in group)
            if start in following:
                cycles.append(path + [start])
                break
            for nxt in following:
                if nxt not in seen:
                    seen.add(nxt)
                    paths.append(path + [nxt])
    return sorted(cycles)


def _excused(kind: str, what: str) -> bool:
    return (kind, what) in KNOWN_PENDING


def test_every_module_belongs_to_a_layer():
    unplaced = sorted(name for name in MODULES if name != "lamaml" and layer_of(name) is None)
    assert not unplaced, f"modules outside every layer (add them to LAYERS in {Path(__file__).name}): {unplaced}"


def test_no_modules_import_each_other_in_a_cycle():
    cycles = [" -> ".join(cycle) for cycle in find_cycles(GRAPH) if not _excused("cycle", " -> ".join(cycle))]
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_imports_go_down_the_layers_only():
    wrong = []
    for name, targets in GRAPH.items():
        for target in sorted(targets):
            if target == "lamaml":
                wrong.append(f"{name} -> lamaml: imports the package root, whose __init__ is the public "
                             f"face (import from the module that defines the name)")
            elif None not in (layer_of(name), layer_of(target)) and layer_of(target) > layer_of(name):
                wrong.append(f"{name} -> {target}")
            elif target == "lamaml.cli" and name != "lamaml.__main__":
                wrong.append(f"{name} -> {target}: only __main__ dispatches to the command line")
    wrong = [w for w in wrong if not _excused("layer", w)]
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_bottom_modules_import_nothing_of_lamaml_but_each_other():
    for name in BOTTOM:
        assert f"lamaml.{name}" in GRAPH and {t.split(".")[1] for t in GRAPH[f"lamaml.{name}"]} <= BOTTOM, name


@pytest.mark.parametrize("importer, forbidden", [
    ("data", {"models", "methods", "config", "engine", "experiments", "cli"}),
    ("models", {"methods", "config", "engine", "experiments"}),
    ("methods", {"config", "engine", "experiments", "cli"}),
    ("config", {"engine", "experiments", "cli"}),
    ("engine", {"experiments", "cli"}),
])
def test_a_layer_never_names_the_layers_above_it(importer, forbidden):
    """The rules as stated, checked apart from the ranks in LAYERS (so a wrong rank cannot hide a breach)."""
    wrong = [f"{name} -> {target}" for name, targets in GRAPH.items() if name.split(".")[1:2] == [importer]
             for target in targets if target.split(".")[1:2] and target.split(".")[1] in forbidden]
    wrong = [w for w in wrong if not _excused("layer", w)]
    assert not wrong, f"{importer} imports from above it:\n" + "\n".join(wrong)


def test_no_module_is_over_400_lines():
    sizes = {name: len(path.read_text().splitlines()) for name, (path, _) in MODULES.items()}
    over = {name: n for name, n in sizes.items() if n > MAX_LINES and not _excused("lines", name)}
    assert not over, "split these modules: " + ", ".join(f"{MODULES[n][0].relative_to(SRC)} ({over[n]} lines)"
                                                          for n in sorted(over))


def test_known_pending_excuses_only_the_files_being_redesigned_and_only_real_failures():
    sizes = {name: len(path.read_text().splitlines()) for name, (path, _) in MODULES.items()}
    cycles = {" -> ".join(cycle) for cycle in find_cycles(GRAPH)}
    for kind, what in KNOWN_PENDING:
        assert any(module.startswith(PENDING_FILES) for module in what.replace(" -> ", " ").split()), what
        if kind == "lines":
            assert sizes.get(what, 0) > MAX_LINES, f"{what} is no longer over {MAX_LINES} lines: drop its entry"
        elif kind == "cycle":
            assert what in cycles, f"the cycle {what} is gone: drop its entry"
        else:
            importer, _, imported = what.partition(" -> ")
            assert kind == "layer" and imported in GRAPH.get(importer, ()), f"{what} no longer holds: drop it"


def test_the_checks_see_imports_inside_functions_and_report_a_cycle_as_a_path():
    # experiments.engines imports the engine only inside run_one; the CLI imports every command's code lazily
    assert "lamaml.engine" in GRAPH["lamaml.experiments.engines"]
    assert "lamaml.experiments.sweep" in GRAPH["lamaml.cli"]
    assert GRAPH["lamaml.data.tinyimagenet"] >= {"lamaml.data.tinyimagenet_archive", "lamaml.atomic"}
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []
