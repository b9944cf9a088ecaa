"""The docs stay true to the code: a generated reference that is current, citations that resolve."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CITATION = re.compile(r"docs/((?:[\w-]+/)*[\w.-]+\.md)#([\w-]+)")
LINK = re.compile(r"\]\(((?!https?:)[^)#\s]*)(?:#([\w-]+))?\)")


def anchors(md: Path) -> set[str]:
    """GitHub's heading anchors of a Markdown file."""
    out = set()
    for line in md.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            out.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return out


def tracked(*patterns: str) -> list[Path]:
    names = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", *patterns], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split()
    return [REPO / n for n in names if (REPO / n).is_file()]


def test_reference_is_generated_from_the_current_schema_and_parsers() -> None:
    proc = subprocess.run([sys.executable, str(REPO / "docs" / "make_reference.py"), "--check"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_every_docs_citation_in_code_names_a_heading_that_exists() -> None:
    cited = []
    for path in tracked("*.py", "*.yml", "*.yaml", "*.toml"):
        for rel, anchor in CITATION.findall(path.read_text()):
            target = REPO / "docs" / rel
            cited.append((path.relative_to(REPO), rel, anchor))
            assert target.is_file(), f"{path.relative_to(REPO)} cites docs/{rel}, which does not exist"
            assert anchor in anchors(target), f"{path.relative_to(REPO)} cites docs/{rel}#{anchor}: no such heading"
    assert len(cited) >= 10  # the scan found the code's citations


@pytest.mark.parametrize("md", [p.relative_to(REPO) for p in tracked("*.md")], ids=str)
def test_every_relative_link_resolves(md: Path) -> None:
    source = REPO / md
    for target, anchor in LINK.findall(source.read_text()):
        path = (source.parent / target).resolve() if target else source
        assert path.exists(), f"{md}: link to {target}, which does not exist"
        if anchor and path.suffix == ".md":
            assert anchor in anchors(path), f"{md}: link to {target}#{anchor}: no such heading"


def test_readme_stays_short() -> None:
    """The README says what the harness is and how to start; the rest lives in docs/."""
    assert len((REPO / "README.md").read_text().splitlines()) <= 250
    assert "README \"" not in "".join(p.read_text() for p in tracked("*.py")), "cite docs/<file>.md#<anchor>"
