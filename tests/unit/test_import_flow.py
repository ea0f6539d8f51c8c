"""Data flows one way, and each arrow is one folder: a module imports from its left, never its right.

    sources -> fastpath -> state -> findings -> exposition,   composed by subsystems/, daemon, commands

`probe.config` (parsed once at the edge, frozen values handed inward) may be imported by anyone and
imports only itself (its `machine` module, which asks the machine for defaults, is composition).
Imports that run only for type checkers (`if TYPE_CHECKING:`) are not dependencies and are skipped.
"""
from __future__ import annotations

import ast
from pathlib import Path

PROBE = Path(__file__).resolve().parents[2] / "probe"

LAYERS = {"sources": 0, "fastpath": 1, "_fastpath": 1, "state": 2, "findings": 3, "exposition": 4,
          "subsystems": 5, "daemon": 5, "commands": 5, "cli": 5, "__main__": 5}
NEUTRAL = {"config", "files", "health", "logsetup", "sdnotify", "nab", "__init__", "__version__"}  # leaves any layer may use



def _layer(module: str) -> tuple[str, int | None]:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    if module == "probe.config.machine":
        return "config.machine", 5
    if top in NEUTRAL:
        return top, None
    return top, LAYERS[top]


def _runtime_imports(tree: ast.AST):
    """(module, lineno) of every import that runs: not under `if TYPE_CHECKING:`."""
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for b in node.body for n in ast.walk(b))
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "probe":
                yield from ((f"probe.{a.name}", node.lineno) for a in node.names)
            else:
                yield node.module, node.lineno
        elif isinstance(node, ast.Import):
            yield from ((a.name, node.lineno) for a in node.names)


def _modules():
    for path in sorted(PROBE.rglob("*.py")):
        rel = path.relative_to(PROBE.parent).with_suffix("")
        name = ".".join(rel.parts).removesuffix(".__init__")
        yield name, path


def violations() -> list[str]:
    out = []
    for name, path in _modules():
        me, mine = _layer(name)
        for target, line in _runtime_imports(ast.parse(path.read_text(), str(path))):
            if not target.startswith("probe.") or target.startswith(name + "."):
                continue
            other, theirs = _layer(target)
            if me == "config" and other != "config":
                out.append(f"{path.relative_to(PROBE.parent)}:{line}: config imports {target}")
            elif mine is not None and theirs is not None and theirs > mine:
                out.append(f"{path.relative_to(PROBE.parent)}:{line}: {me} imports {target} ({other}, to its right)")
    return out


def test_no_import_runs_against_the_flow():
    assert violations() == []


def test_the_check_sees_an_import_against_the_flow(tmp_path):
    fake = tmp_path / "probe"
    (fake / "sources").mkdir(parents=True)
    (fake / "sources" / "bad.py").write_text("from probe.findings.ledger import Ledger\n"
                                              "from typing import TYPE_CHECKING\n"
                                              "if TYPE_CHECKING:\n    from probe.state.store import Store\n")
    globals()["PROBE"] = fake
    try:
        assert violations() == ["probe/sources/bad.py:1: sources imports probe.findings.ledger (findings, to its right)"]
    finally:
        globals()["PROBE"] = Path(__file__).resolve().parents[2] / "probe"
