"""Every `aws-deploy-helper ...` command that README.md and docs/*.md show is one the CLI accepts
(issue 24: documented commands had drifted from the program). Each is parsed by the CLI's own
parser, as `--help` would judge it; commands that can run are also run elsewhere (the sandbox
tests, `make demo`), since running every example needs AWS, Jenkins or root."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from helper.cli import parse_words

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_FENCES = ("```sh", "```bash", "```shell", "```console")
# The program as a shell command's first word: at a line's start, after $( ; && || |, or as a path.
COMMAND = re.compile(r"(?:^|\$\(|&&|\|\||;|\|)\s*(?:\S*/bin/)?aws-deploy-helper\s+(?P<rest>.*)")
# Where the command's own words end: a pipe, a list operator, a redirection or the end of $( ).
END = re.compile(r"\s+(?:\||&&|;|>|2>)\s*|\)\"|\)$")


def documented_commands() -> list[tuple[str, list[str]]]:
    found = []
    for doc in DOCS:
        fence = False
        for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            if line.startswith("```"):
                fence = not fence and line.strip() in SHELL_FENCES
                continue
            text = line.strip().removeprefix("$ ")
            match = COMMAND.search(text) if fence and not text.startswith("#") else None
            if match:
                words = shlex.split(END.split(match["rest"])[0], comments=True)
                found.append((f"{doc.relative_to(ROOT)}:{number}", words))
    return found


COMMANDS = documented_commands()


def test_the_docs_show_commands_at_all():
    assert len(COMMANDS) >= 20 and {words[0] for _, words in COMMANDS} >= {
        "inventory", "consume", "sandbox", "hooks", "doctor", "fleet", "breaker"}


@pytest.mark.parametrize("where, words", COMMANDS, ids=[w for w, _ in COMMANDS])
def test_each_documented_command_is_one_the_cli_accepts(where, words, capsys):
    try:
        args = parse_words(words)
    except SystemExit:
        pytest.fail(f"{where}: `aws-deploy-helper {' '.join(words)}` is refused: {capsys.readouterr().err.strip()}")
    assert callable(args.func) or args.command == "sandbox"  # the sandbox's runner: helper/program.py
