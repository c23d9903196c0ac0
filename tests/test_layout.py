"""Imports run one way: app → rag → indexing (evaluation and benchmarks above), never back."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGES = ("indexing", "rag", "evaluation", "app_pages", "benchmarks", "testkit", "scripts")


def modules() -> list[Path]:
    found = [ROOT / "app.py"]
    for package in PACKAGES:
        found += sorted((ROOT / package).rglob("*.py"))
    return found


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def under(names: set[str], prefix: str) -> set[str]:
    return {name for name in names if name == prefix or name.startswith(prefix + ".")}


@pytest.mark.parametrize("path", modules(), ids=lambda path: str(path.relative_to(ROOT)))
def test_imports_run_one_way(path: Path) -> None:
    names = imported(path)
    top = path.relative_to(ROOT).parts[0]

    assert not under(names, "tests"), "shared test code lives in testkit/"
    if top == "indexing":
        assert not under(names, "rag") and not under(names, "evaluation")
    if top == "rag":
        assert not under(names, "evaluation") or path.name == "__main__.py"  # adds `eval`
    if top in ("app.py", "app_pages"):
        assert not under(names, "indexing.cli"), "the app needs no click commands"
        assert not under(names, "evaluation")
    if top != "indexing":
        private = {name for name in names if name.startswith("indexing") and "._" in name}
        assert not private, "private names of indexing stay inside it"
    if top not in ("app.py", "app_pages"):
        assert not under(names, "streamlit"), "only the app imports streamlit"
