"""The manual (docs/, MkDocs): its reference pages are what the code says (regenerated and
compared), and `mkdocs build --strict` passes, so a broken link, a missing anchor or a
page left out of the navigation fails the suite. A planted drift fails it too."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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
