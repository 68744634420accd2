"""The documentation: its ``>>>`` examples run, and the site builds without a warning.

Doctests in the docs: every fenced code block of a page under ``docs/`` that holds ``>>>``
lines (```` ```pycon ````, ```` ```python ```` ...) is run with :mod:`doctest`, the blocks of a
page in order and sharing their names, like one interactive session. The session starts with
``torch``, ``finetune_kit as fk`` and ``from finetune_kit import scratch`` imported, in a
temporary working directory. Blocks without ``>>>`` are illustrations and are not run. Keep the
examples fast: ``fake`` data, tiny models.
"""

from __future__ import annotations

import doctest
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^\n`]*)$")
SKIPPED_DIRS = {"_build", "_generated", "_static", "screenshots"}
OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def doc_pages() -> list[Path]:
    """The Markdown pages of the site."""
    return sorted(p for p in DOCS.rglob("*.md") if not SKIPPED_DIRS.intersection(p.relative_to(DOCS).parts))


def code_blocks(text: str) -> list[tuple[int, str]]:
    """``(first line number, content)`` of each fenced code block of a Markdown page."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        fence, indent, start = opening["fence"], len(opening["indent"]), i + 1
        i += 1
        while i < len(lines) and not re.match(rf"^[ \t]*{re.escape(fence)}[ \t]*$", lines[i]):
            i += 1
        body = [line[indent:] if line[:indent].strip() == "" else line for line in lines[start:i]]
        blocks.append((start + 1, "\n".join(body)))
        i += 1
    return blocks


def page_doctest(page: Path) -> doctest.DocTest | None:
    """The ``>>>`` examples of ``page`` as one DocTest (None when it has none)."""
    parser = doctest.DocTestParser()
    examples = []
    for first_line, block in code_blocks(page.read_text(encoding="utf-8")):
        if not re.search(r"^>>> ", block, re.MULTILINE):
            continue
        for example in parser.get_examples(block, name=str(page)):
            example.lineno += first_line - 1
            examples.append(example)
    if not examples:
        return None
    name = str(page.relative_to(DOCS)) if page.is_relative_to(DOCS) else page.name
    return doctest.DocTest(examples, _session_globals(), name, str(page), 0, None)


def _session_globals() -> dict:
    import torch

    import finetune_kit as fk
    from finetune_kit import scratch

    return {"torch": torch, "fk": fk, "scratch": scratch, "__name__": "__docs__"}


PAGES_WITH_EXAMPLES = [p for p in doc_pages() if ">>> " in p.read_text(encoding="utf-8")]


def test_code_blocks_are_found():
    text = "a\n\n```pycon\n>>> 1 + 1\n2\n```\n\n  ~~~python\n  x = 1\n  ~~~\n"
    assert code_blocks(text) == [(4, ">>> 1 + 1\n2"), (9, "x = 1")]


def test_page_doctest_reports_line_numbers(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n```pycon\n>>> 1 + 1\n3\n```\n", encoding="utf-8")
    test = page_doctest(page)
    assert test is not None and test.examples[0].lineno == 3  # 0-based: line 4 of the file
    runner = doctest.DocTestRunner(optionflags=OPTIONS)
    assert runner.run(test, out=lambda _: None).failed == 1


@pytest.mark.parametrize(
    "page", PAGES_WITH_EXAMPLES, ids=[str(p.relative_to(DOCS)) for p in PAGES_WITH_EXAMPLES]
)
def test_examples_in_the_docs_run(page, tmp_path, monkeypatch, default_plots):
    """The pages' examples run with the library's real defaults (figures included)."""
    monkeypatch.chdir(tmp_path)
    test = page_doctest(page)
    assert test is not None
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=OPTIONS)
    result = runner.run(test, out=report.append)
    assert result.failed == 0, "".join(report)


@pytest.mark.slow
def test_site_builds_without_warnings(tmp_path):
    """``sphinx-build -W``: the whole site, every API entry, no warning."""
    out = tmp_path / "html"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-b",
            "html",
            "-d",
            str(tmp_path / "doctrees"),
            str(DOCS),
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    api = (out / "api.html").read_text(encoding="utf-8")
    import finetune_kit as fk

    missing = [name for name in fk.__all__ if f'id="finetune_kit.{name}"' not in api]
    assert not missing, f"the rendered API reference has no entry for {missing}"
    for page in ("getting_started.html", "guide/trainer.html", "tutorials/fashion_mnist_convnet.html"):
        assert (out / page).is_file(), f"{page} was not built"
