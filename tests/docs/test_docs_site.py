"""The README is a front door and every document stands on its own: nothing links
outside the repository, and every page the docs site names exists.

(`mkdocs build --strict` in `.ci/run` checks links between the pages themselves.)
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
_LINK = re.compile(r"\[[^\]]*\]\((?P<target>[^)\s]+)\)")
_OUTSIDE = re.compile(r"(\.\./shared|/work/shared|shared/(API|DESIGN)\.md)")


def _documents() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md")), *sorted((ROOT / "helm").rglob("README.md"))]


def test_the_readme_is_a_front_door() -> None:
    assert len(README.read_bytes()) <= 10_500


@pytest.mark.parametrize("document", _documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_nothing_links_outside_the_repository(document: Path) -> None:
    text = document.read_text()
    assert not _OUTSIDE.search(text), "the contract and house style live outside the repo"
    for match in _LINK.finditer(text):
        target = match.group("target").split("#", 1)[0]
        if not target or re.match(r"^[a-z]+:", target):
            continue  # an anchor on the same page, or the public web
        resolved = (document.parent / target).resolve()
        assert resolved.is_relative_to(ROOT), f"{target} leaves the repository"
        assert resolved.exists(), f"{document.name} links to {target}, which does not exist"


def _nav_files(node: object) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [f for item in node for f in _nav_files(item)]
    if isinstance(node, dict):
        return [f for value in node.values() for f in _nav_files(value)]
    return []


def test_every_page_in_the_nav_exists() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    pages = _nav_files(config["nav"])
    assert "index.md" in pages
    missing = [page for page in pages if not (DOCS / page).is_file()]
    assert missing == []
