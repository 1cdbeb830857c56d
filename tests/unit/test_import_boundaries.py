"""The layering of the library, checked: the import contracts of pyproject.toml (the stages'
layers, no Arrow where hoop is read, no Dagster in the library), what the process that reads hoop
loads when it runs (never Arrow: it streams 100+ MiB bodies on a small memory budget), and no
cycle among module-level imports."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "hoop_sessions"

# The modules the reading process loads: reading hoop, writing the raw file, the sync plan and
# ledger, and moving files to and from the object store.
READING_SIDE = (
    "extract.client", "extract.transport", "extract.windows", "extract.listing", "extract.ordered",
    "extract.day", "extract.raw", "extract.finality", "extract.principal", "build.result", "sync.day",
    "extract.protect", "extract.events", "extract.values", "sync.run", "sync.plan", "sync.ledger",
    "lock", "sync.mirror", "sync.worker", "store", "config", "errors", "paths", "tempfiles",
    "progress",
)  # fmt: skip


@pytest.mark.parametrize("module", READING_SIDE)
def test_a_module_of_the_reading_process_never_imports_arrow(module: str) -> None:
    code = (
        f"import sys, hoop_sessions.{module}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pyarrow', 'pandas', 'dagster')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"hoop_sessions.{module} imports {out.stdout.strip()}"


def module_imports() -> dict[str, set[str]]:
    """hoop_sessions module -> the hoop_sessions modules it imports at module level."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        name = name.removesuffix(".__init__")
        found: set[str] = set()
        for node in ast.parse(path.read_text()).body:  # module level only: not inside functions
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module.startswith("hoop_sessions"):
                    found.add(node.module)
                    found.update(
                        f"{node.module}.{a.name}"
                        for a in node.names
                        if (
                            PACKAGE.parent / node.module.replace(".", "/") / f"{a.name}.py"
                        ).exists()
                    )
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("hoop_sessions"))
            # Not descended into: functions (imports made when called) and `if TYPE_CHECKING:`.
        graph[name] = found - {name, "hoop_sessions"}
    return graph


def test_the_import_contracts_of_pyproject_hold() -> None:
    """The layers (each stage imports only those below it), Arrow kept out of reading hoop, and
    Dagster out of the library: ``[tool.importlinter]`` in pyproject.toml, every import counted,
    those inside functions too."""
    lint_imports = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run(
        [str(lint_imports), "--no-cache"],
        capture_output=True,
        text=True,
        cwd=PACKAGE.parents[1],
        check=False,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


def test_no_cycle_among_the_librarys_module_level_imports() -> None:
    graph = module_imports()
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycle = [*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt in graph and state.get(nxt) is None:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for start in sorted(graph):
        if state.get(start) is None:
            visit(start, [start])
