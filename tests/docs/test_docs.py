"""The manual (docs/, MkDocs): its reference pages are what the code says (regenerated and
compared), and `mkdocs build --strict` passes, so a broken link, a missing anchor or a
page left out of the navigation fails the suite. A planted drift fails it too."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from flows.cli import app
from tests.docs import reference

ROOT = Path(__file__).resolve().parents[2]


def test_the_reference_pages_are_what_the_code_says() -> None:
    assert reference.main(["--check"]) == 0, "python -m tests.docs.reference"


def test_a_drifted_reference_page_is_caught(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, text in reference.pages().items():
        (tmp_path / name).write_text(text)
    monkeypatch.setattr(reference, "REFERENCE", tmp_path)
    assert reference.main(["--check"]) == 0
    page = tmp_path / "outcomes.md"
    page.write_text(page.read_text().replace("`deleted`", "`removed`"))
    assert reference.main(["--check"]) == 1


def test_the_site_builds_strict(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "NO_MKDOCS_2_WARNING": "1", "HOME": str(tmp_path)},
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    built = tmp_path / "site"
    for page in ("index.html", "reference/configuration/index.html", "how-to/operating/index.html"):
        assert (built / page).is_file(), page
    assert (built / "regsweep.schema.json").is_file()  # published with the docs


def command_lines() -> list[tuple[str, list[str]]]:
    """(page, words) of every `regsweep ...` line in the manual's and the README's `sh`
    blocks (comments dropped; a line ending in `\\` joined with the next)."""
    found = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for block in re.findall(r"```sh\n(.*?)```", page.read_text(), re.S):
            for line in block.replace("\\\n", " ").splitlines():
                words = shlex.split(line, comments=True)
                if words[:1] == ["regsweep"]:
                    found.append((str(page.relative_to(ROOT)), words))
    return found


def test_every_command_line_in_the_manual_names_real_commands_and_options() -> None:
    """A renamed option or command fails here, not in a user's terminal."""
    root = typer.main.get_command(app)
    assert len(command_lines()) > 20
    wrong = []
    for page, words in command_lines():
        command, rest = root, words[1:]
        while hasattr(command, "commands") and rest and rest[0] in command.commands:
            command, rest = command.commands[rest[0]], rest[1:]
        names = {name for p in command.params for name in [*p.opts, *p.secondary_opts]}
        names |= {name for p in root.params for name in p.opts}  # --quiet, --debug
        for word in rest:
            option = word.split("=", 1)[0]
            if option.startswith("-") and option not in names:
                wrong.append(f"{page}: {' '.join(words)}: no option {option}")
        if hasattr(command, "commands"):  # a group (typer's own click): no command named
            wrong.append(f"{page}: {' '.join(words)}: no such command")
    assert wrong == []
