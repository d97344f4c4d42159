"""The package's layers import only downwards: core, intake, store, runtime, workspaces, daemon,
client, cli (each may import those before it), and the client never imports the daemon."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "starforge_daemon"
LAYERS = ("core", "intake", "store", "runtime", "workspaces", "daemon", "client", "cli")


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "starforge_daemon" and parts[1] in LAYERS \
        else None


def imports_of(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_every_layer_imports_only_the_layers_below_it() -> None:
    upward = []
    for layer in LAYERS:
        allowed = set(LAYERS[:LAYERS.index(layer) + 1])
        for path in sorted((PACKAGE / layer).rglob("*.py")):
            for module in sorted(imports_of(path)):
                target = layer_of(module)
                if target is not None and target not in allowed:
                    upward.append(f"{path.relative_to(PACKAGE)} imports {module}")
    assert not upward, "\n".join(upward)


def test_core_modules_do_no_io() -> None:
    io_modules = {"os", "socket", "subprocess", "selectors", "shutil", "time"}
    offenders = [f"{path.name} imports {module}"
                 for path in sorted((PACKAGE / "core").rglob("*.py"))
                 for module in sorted(imports_of(path)) if module.split(".")[0] in io_modules]
    assert not offenders, "\n".join(offenders)


def test_no_module_is_over_350_lines_but_the_keeper() -> None:
    exempt = {"keeper.py"}  # standard library only, run as a script: one file on purpose
    long = [f"{path.relative_to(PACKAGE)}: {lines}" for path in sorted(PACKAGE.rglob("*.py"))
            if path.name not in exempt and (lines := len(path.read_text().splitlines())) > 350]
    assert not long, "\n".join(long)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_import_cycle_between_modules() -> None:
    """Imports at module level only: a function-level import is loaded when it runs."""
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        found = set()
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.update(target for target in (node.module, *(f"{node.module}.{a.name}"
                                                                 for a in node.names))
                             if target in modules)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names if alias.name in modules)
        graph[name] = found - {name}
    done: set[str] = set()

    def visit(name: str, trail: list[str]) -> None:
        if name in trail:
            raise AssertionError("import cycle: " + " -> ".join([*trail[trail.index(name):], name]))
        if name in done:
            return
        for target in sorted(graph[name]):
            visit(target, [*trail, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])


def test_the_keeper_imports_neither_dataclasses_nor_inspect() -> None:
    """Its modules loaded as the daemon starts it (``-I -S``, beside one another), with every
    stream adapter: ``dataclasses`` would bring ``inspect`` and 1.3 MB to each keeper."""
    here = PACKAGE / "runtime" / "local"
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); "
             "import keeper, stream_reader; "
             "[stream_reader.open_stream(kind) for kind in ('claude', 'codex', 'gemini')]; "
             "print(' '.join(sys.modules))")
    loaded = subprocess.run([sys.executable, "-I", "-S", "-c", probe, str(here)],
                            capture_output=True, text=True, check=True).stdout.split()
    assert "keeper" in loaded and "starforge_daemon.core.streams.claude" in loaded
    assert not {"dataclasses", "inspect"} & set(loaded)
