"""The layers in DESIGN.md hold, and every module imports on its own (no hidden cycles)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("storage", "channels", "bots", "routing", "inbox")
MAY_IMPORT = {
    "storage": {"storage"},
    "channels": {"channels"},
    "bots": {"bots", "storage"},
    "routing": {"routing", "channels", "storage", "bots"},
    "inbox": set(PACKAGES),
}


def modules() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def imported_packages(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & set(PACKAGES)


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_lower_layers_never_import_higher_ones(path: Path) -> None:
    package = path.relative_to(ROOT).parts[0]
    assert imported_packages(path) <= MAY_IMPORT[package]


def test_every_module_imports_on_its_own() -> None:
    names = [
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for p in modules()
        if "migrations" not in p.parts
    ]
    # One interpreter; before each import, forget every project module imported so far, so each
    # module is imported first, on its own, the way a cycle would show.
    script = (
        "import importlib, sys\n"
        f"own = {PACKAGES!r}\n"
        "for name in sys.argv[1:]:\n"
        "    for loaded in [m for m in sys.modules if m.split('.')[0] in own]:\n"
        "        del sys.modules[loaded]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as exc:\n"
        "        sys.exit(f'{name}: {exc!r}')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, *names],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
