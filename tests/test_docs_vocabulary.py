"""What users read speaks to users: no words meant for the people who built the library.

Scanned: the documentation's sources (``docs/**/*.md``), README, CHANGELOG, the examples and
benchmarks (code and text), the shipped configs, and the help text of every CLI subcommand.
The phrases are the ones that make sense only inside the project's own work: issue numbers,
"seeds' loop", "anchors", "in this task", "this session", "the team", "the lead". Ordinary
words that share a stem stay legitimate ("random seed", a ``seed`` key, "targets" as labels).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

INTERNAL = [
    re.compile(r"\bissues? #?\d+", re.IGNORECASE),
    re.compile(r"\bthe issue's\b", re.IGNORECASE),
    re.compile(r"\bseeds' loop\b|\bseed scripts?\b", re.IGNORECASE),
    re.compile(r"\banchors?\b", re.IGNORECASE),
    re.compile(r"\bin this task\b", re.IGNORECASE),
    re.compile(r"\bthis session\b", re.IGNORECASE),
    re.compile(r"\bthe team\b", re.IGNORECASE),
    re.compile(r"\bthe lead\b", re.IGNORECASE),
    re.compile(r"\bother engineers\b", re.IGNORECASE),
    re.compile(r"\btargets? \(issue", re.IGNORECASE),
]

SKIPPED_DIRS = {"_build", "_generated", "__pycache__", "runs"}


def user_files() -> list[Path]:
    """Every file a user reads: docs sources, README, CHANGELOG, examples, benchmarks, configs."""
    files = [ROOT / "README.md", ROOT / "CHANGELOG.md"]
    files += sorted((ROOT / "docs").rglob("*.md"))
    files += sorted((ROOT / "docs" / "figures").glob("*.py"))
    for folder in ("examples", "benchmarks"):
        files += sorted(p for p in (ROOT / folder).rglob("*") if p.suffix in (".py", ".md", ".toml"))
    files += sorted((ROOT / "src" / "finetune_kit" / "config" / "builtin").glob("*.toml"))
    return [p for p in files if p.is_file() and not SKIPPED_DIRS.intersection(p.relative_to(ROOT).parts)]


def internal_phrases(text: str) -> list[str]:
    """The internal phrases found in ``text``, with their line numbers."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for pattern in INTERNAL:
            for match in pattern.finditer(line):
                found.append(f"line {number}: {match.group(0)!r}")
    return found


def test_the_phrases_are_recognised_and_user_words_are_not():
    text = "Status against issue 9\nthe seeds' loop\nthe anchors' figures\nas the lead said"
    assert len(internal_phrases(text)) == 4
    legit = "seed = 0 sets the random seed\nlabels are the targets\nseeds 1 and 2\nan issue with it"
    assert internal_phrases(legit) == []


@pytest.mark.parametrize("path", user_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_user_facing_files_have_no_internal_words(path):
    found = internal_phrases(path.read_text(encoding="utf-8"))
    assert not found, f"{path.relative_to(ROOT)}: {', '.join(found)}"


def test_cli_help_has_no_internal_words():
    from finetune_kit.cli.parser import SUBCOMMANDS, build_parser

    parser = build_parser()
    texts = {"finetune-kit": parser.format_help()}
    subparsers = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, sub in subparsers.choices.items():
        texts[name] = sub.format_help()
    assert len(texts) > len(SUBCOMMANDS)  # every subcommand was formatted
    found = {name: internal_phrases(text) for name, text in texts.items()}
    assert not any(found.values()), {name: hits for name, hits in found.items() if hits}
