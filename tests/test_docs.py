"""The docs say what the tool does: a generated CLI reference in sync with `--help`, a short
README that links every page, and links that resolve."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
# pages other parts of the project write; a link to one that is not there yet is allowed
PLANNED = {"docs/gpu-check.md", "docs/training-algorithms.md", "docs/thinking-budget.md", "docs/verifiers.md",
           "docs/sandbox.md"}


def test_cli_reference_is_in_sync_with_help():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import gen_cli_docs
    finally:
        sys.path.pop(0)
    current = (DOCS / "cli-reference.md").read_text(encoding="utf-8")
    assert current == gen_cli_docs.render(), (
        "docs/cli-reference.md is out of date with `r1 … --help`: regenerate it with "
        "`.venv/bin/python scripts/gen_cli_docs.py` and commit the result")


def test_the_check_mode_of_the_generator_agrees(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_cli_docs.py"), "--check"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_readme_is_a_front_page():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) < 200
    for heading in ("## Set up (two commands)", "## Quick start", "## The R1 recipe as commands", "## Documentation"):
        assert heading in readme
    assert "Commands that exist today" not in readme


def _links(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)  # not inside code
    return [m for m in re.findall(r"\]\(([^)\s]+)\)", text) if not re.match(r"[a-z]+:", m)]


PAGES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    for link in _links(page):
        target_text, _, anchor = link.partition("#")
        target = (page.parent / target_text).resolve() if target_text else page
        rel = target.relative_to(ROOT).as_posix() if target.is_relative_to(ROOT) else str(target)
        if rel in PLANNED and not target.exists():
            continue
        assert target.exists(), f"{page.relative_to(ROOT)}: broken link {link}"
        if anchor and target.suffix == ".md":
            assert anchor in _anchors(target), f"{page.relative_to(ROOT)}: no heading #{anchor} in {rel}"


def _anchors(page: Path) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces as '-'."""
    out = set()
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            out.add(re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", title)))
    return out


def test_every_docs_page_is_linked_from_the_index():
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    for page in sorted(DOCS.rglob("*.md")):
        rel = page.relative_to(DOCS).as_posix()
        if rel != "index.md":
            assert f"({rel})" in index, f"docs/index.md does not link {rel}"


def test_docs_name_no_machine_paths():
    for page in PAGES:
        assert "/work/" not in page.read_text(encoding="utf-8"), page
