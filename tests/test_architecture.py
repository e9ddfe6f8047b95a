"""The import direction of the architecture (README, "Layout"), checked on the real import graph.

`api → ems → optimizer → grid_models`, nothing of ours below `grid_models`; `ems` never imports
`api`, `examples` or `tests`; inside `ems`, every subpackage imports only those of lower stages
(the table below), so no two subpackages import each other. The graph is `grimp`'s (the engine of
import-linter): static, so imports inside functions and under `TYPE_CHECKING` count too.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

import grimp
import pytest

TOP_LEVEL = ("api", "ems", "optimizer", "grid_models")
MAY_IMPORT: dict[str, set[str]] = {
    "api": {"ems", "optimizer", "grid_models"},
    "ems": {"optimizer", "grid_models"},
    "optimizer": {"grid_models"},
    "grid_models": set(),
}
NEVER_IMPORTED = ("examples", "tests", "benchmarks", "bench_cpo")

# `bench_cpo` (`ems scsp-bench`) judges any SCSP from the OCPI traffic and its own car physics: of
# the EMS it may use only pure computation (the replay's physics, KPIs and report, OCPI schemas
# and times, the simulated clock, series files, the names of the strategies) — never the store,
# the planner or the API, which would tell it what an EMS under test did.
BENCH_MAY_IMPORT_FROM_EMS = (
    "ems.core.clock",
    "ems.ocpi.datetimes",
    "ems.ocpi.schemas",
    "ems.planning.strategies",
    "ems.replay.cars",
    "ems.replay.kpis",
    "ems.replay.log",
    "ems.replay.report",
    "ems.replay.result",
    "ems.replay.series",
    "ems.sites.series",
)

# `ems`'s stages, the highest first: a subpackage may import those after it in this list, never
# one before it nor one of its own row (rows hold stages independent of each other).
EMS_STAGES: tuple[tuple[str, ...], ...] = (
    ("cli",),
    ("replay",),
    ("admin", "drivers", "cluster"),
    ("planning",),
    ("dispatch",),
    ("sites", "ocpi"),
    ("core",),
    ("store",),
)


@cache
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*TOP_LEVEL, "bench_cpo", include_external_packages=True, cache_dir=None)


def _where(importer: str, imported: str) -> str:
    details = graph().get_import_details(importer=importer, imported=imported)
    return ", ".join(f"{d['importer']}:{d['line_number']}" for d in details) or importer


def _package_imports(package: str) -> Iterable[tuple[str, str]]:
    """(importer module, imported module) for every import out of `package`'s modules."""
    modules = graph().find_descendants(package) | {package}
    for importer in sorted(modules):
        for imported in sorted(graph().find_modules_directly_imported_by(importer)):
            yield importer, imported


def _top(module: str) -> str:
    return module.split(".")[0]


def test_every_ems_module_lives_in_a_stage() -> None:
    stages = {name for row in EMS_STAGES for name in row}
    loose = sorted(
        m
        for m in graph().find_children("ems")
        if m.split(".")[1] not in stages or not graph().find_children(m)
    )
    assert not loose, f"modules of ems/ outside the stages of the README's layout: {loose}"
    missing = sorted(s for s in stages if f"ems.{s}" not in graph().modules)
    assert not missing, f"stages listed here but absent from ems/: {missing}"


@pytest.mark.parametrize("package", TOP_LEVEL)
def test_top_level_direction(package: str) -> None:
    wrong = [
        f"{importer} imports {imported} ({_where(importer, imported)})"
        for importer, imported in _package_imports(package)
        if _top(imported) != package
        and (
            (_top(imported) in TOP_LEVEL and _top(imported) not in MAY_IMPORT[package])
            or _top(imported) in NEVER_IMPORTED
        )
    ]
    assert not wrong, "imports against api → ems → optimizer → grid_models:\n" + "\n".join(wrong)


def test_ems_stages_import_downwards_only() -> None:
    rank = {name: level for level, row in enumerate(EMS_STAGES) for name in row}
    wrong = []
    for importer, imported in _package_imports("ems"):
        src, dst = importer.split("."), imported.split(".")
        if dst[0] != "ems" or len(src) < 2 or len(dst) < 2 or src[1] == dst[1]:
            continue
        if rank[dst[1]] <= rank[src[1]]:
            wrong.append(
                f"ems.{src[1]} → ems.{dst[1]}: {importer} imports {imported} ({_where(importer, imported)})"
            )
    assert not wrong, "ems stages importing upwards or sideways:\n" + "\n".join(wrong)


def _subpackages(package: str) -> list[str]:
    return sorted(m for m in graph().find_descendants(package) if graph().find_children(m))


@pytest.mark.parametrize("package", TOP_LEVEL)
def test_no_cycle_between_sibling_subpackages(package: str) -> None:
    """Within any package, no two of its children (subpackages or modules) import each other round."""
    parents = [package, *_subpackages(package)]
    cycles = []
    for parent in parents:
        children = sorted(graph().find_children(parent))
        edges = {child: set() for child in children}
        for child in children:
            inside = graph().find_descendants(child) | {child} if graph().find_children(child) else {child}
            for importer in inside:
                for imported in graph().find_modules_directly_imported_by(importer):
                    for other in children:
                        if other != child and (imported == other or imported.startswith(other + ".")):
                            edges[child].add(other)
        cycles += [f"{' → '.join(c)}" for c in _cycles(edges)]
    assert not cycles, "import cycles between sibling modules or subpackages:\n" + "\n".join(cycles)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_bench_uses_only_pure_parts_of_the_ems() -> None:
    wrong = [
        f"{importer} imports {imported} ({_where(importer, imported)})"
        for importer, imported in _package_imports("bench_cpo")
        if _top(imported) in ("api", "tests", "benchmarks")
        or (
            _top(imported) == "ems"
            and not any(imported == m or imported.startswith(m + ".") for m in BENCH_MAY_IMPORT_FROM_EMS)
        )
    ]
    assert not wrong, "bench_cpo reaching into the EMS it judges:\n" + "\n".join(wrong)


def test_the_bench_reuses_the_cpo_simulator() -> None:
    """It plays the CPO with the simulator's OCPI side, not a second one (and so imports it;
    grimp sees `examples`, outside the graph, as one external package)."""
    assert "examples" in {i for _, i in _package_imports("bench_cpo")}
