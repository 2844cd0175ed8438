"""README.md and docs/: every relative link resolves, and the README stays short enough to read in minutes.

A link resolves when the file it names exists and, for `file.md#anchor` or `#anchor`, that Markdown file has
a heading whose anchor it is. Anchors follow GitHub's rule: the heading's text in lower case, punctuation
other than `-` and `_` dropped, each space a `-`, and `-1`, `-2`, … after a heading met again. Links to
other sites (`https://…`) are not followed: the suite runs offline.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_MOST_LINES = 220

FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")  # [text](target) and ![alt](target)
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
ELSEWHERE = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # https:, mailto:, …


def anchor(heading: str) -> str:
    """The anchor GitHub gives a heading (before the `-1`, `-2` of headings met again)."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").strip().lower()
    return "".join(c for c in text if c.isalnum() or c in " -_").replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every anchor a Markdown file's headings give, outside its code blocks."""
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(FENCE.sub("", page.read_text())):
        name = anchor(heading)
        count = seen.get(name, 0)
        seen[name] = count + 1
        found.add(name if count == 0 else f"{name}-{count}")
    return found


def links(page: Path) -> list[str]:
    """The targets of a Markdown file's links and images, outside code blocks and code spans."""
    return LINK.findall(CODE_SPAN.sub("", FENCE.sub("", page.read_text())))


def broken_links(page: Path) -> list[str]:
    """The relative links of `page` that name no file, or a heading its Markdown file does not have."""
    broken = []
    for target in links(page):
        if ELSEWHERE.match(target):
            continue
        path, _, fragment = target.partition("#")
        named = (page.parent / path).resolve() if path else page
        if not named.exists():
            broken.append(f"{target} (no file {named})")
        elif fragment and named.suffix == ".md" and fragment not in anchors(named):
            broken.append(f"{target} (no heading with the anchor #{fragment} in {named.name})")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_relative_link_resolves(page: Path) -> None:
    assert links(page) or page.name != "README.md", "the README links to its docs"
    broken = broken_links(page)
    assert not broken, f"{page.relative_to(ROOT)} has links that do not resolve: {broken}"


def test_the_readme_is_at_most_220_lines() -> None:
    lines = len((ROOT / "README.md").read_text().splitlines())
    assert lines <= README_MOST_LINES, f"README.md has {lines} lines; what a newcomer can skip belongs in docs/"


def test_the_readme_links_to_every_page_of_docs() -> None:
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in links(ROOT / "README.md") if not ELSEWHERE.match(t)}
    assert [p.name for p in PAGES[1:] if p.resolve() not in linked] == []


def test_anchors_follow_githubs_rule() -> None:
    assert anchor("The `labkit` command") == "the-labkit-command"
    assert anchor("The lab's state") == "the-labs-state"
    assert anchor("A class on Kubernetes (Zero to JupyterHub)") == "a-class-on-kubernetes-zero-to-jupyterhub"
    assert anchor("Changes to moto, botocore and awscli") == "changes-to-moto-botocore-and-awscli"
    assert anchor("snake_case and-dashes") == "snake_case-and-dashes"


def test_a_broken_link_or_anchor_is_found(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other\n\n## A heading, with punctuation\n\n## Again\n\n## Again\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n[fine](other.md) [fine](other.md#a-heading-with-punctuation) [fine](other.md#again-1)\n"
        "[fine](#page) [site](https://example.com/missing) `[in code](missing.md)`\n"
        "```\n[in a block](missing.md)\n```\n"
        "[gone](missing.md) [no heading](other.md#nowhere) [here](#nowhere) ![image](missing.png)\n"
    )
    assert broken_links(page) == [
        f"missing.md (no file {tmp_path / 'missing.md'})",
        "other.md#nowhere (no heading with the anchor #nowhere in other.md)",
        "#nowhere (no heading with the anchor #nowhere in page.md)",
        f"missing.png (no file {tmp_path / 'missing.png'})",
    ]
