"""`--werf-config werf.yaml`: werf's cleanup section, read as werf users wrote it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.core.config import load_config
from tasks.core.errors import ConfigError
from tests.cli import run_cli

REGSWEEP = "registry: {url: 'http://127.0.0.1:9'}\ngit: {path: .}\n"
WERF_CLEANUP = """\
cleanup:
  disableBuiltWithinLastNHoursPolicy: true
  keepPolicies:
  - references:
      tag: /.*/
      limit:
        last: 5
  - references:
      branch: /.*/
      limit:
        last: 3
        in: 72h
        operator: Or
    imagesPerReference:
      last: 2
"""
WERF = f"""\
project: shop
configVersion: 1
{WERF_CLEANUP}---
image: backend
dockerfile: Dockerfile
---
image: frontend
dockerfile: Dockerfile
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_werf_cleanup_equals_the_same_section_inline(tmp_path: Path) -> None:
    extra = "cleanup: {keepTags: ['/^v\\d+/'], unlinked: delete}\n"
    with_werf = load_config(
        _write(tmp_path, "r.yaml", REGSWEEP + extra), _write(tmp_path, "werf.yaml", WERF)
    )
    inline = WERF_CLEANUP.replace(
        "cleanup:\n", "cleanup:\n  keepTags: ['/^v\\d+/']\n  unlinked: delete\n"
    )
    # werf.yaml also says which images werf manages (link.werfImages, tasks.policy.plan)
    assert with_werf.link.werf_images == ["backend", "frontend"]
    inline_config = load_config(_write(tmp_path, "inline.yaml", REGSWEEP + inline))
    assert with_werf == inline_config.model_copy(
        update={
            "link": inline_config.link.model_copy(update={"werf_images": ["backend", "frontend"]})
        }
    )
    assert len(with_werf.cleanup.keep_policies) == 2
    assert with_werf.cleanup.keep_tags == ["/^v\\d+/"]


@pytest.mark.parametrize(
    ("werf", "regsweep_extra", "field", "words"),
    [
        (
            WERF.replace("last: 2", "last: -3"),
            "",
            "cleanup.keepPolicies[1].imagesPerReference.last",
            "werf.yaml",
        ),
        (
            WERF.replace("  disableBuilt", "  keepTags: []\n  disableBuilt"),
            "",
            "cleanup.keepTags",
            "not a werf cleanup key",
        ),
        (WERF, "cleanup: {keepPolicies: []}\n", "cleanup.keepPolicies", "set both"),
        (
            'project: x\nconfigVersion: 1\n{{ include "cleanup" . }}\n',
            "",
            "--werf-config",
            "Go templates",
        ),
        ("image: backend\n", "", "--werf-config", "no meta document"),
    ],
    ids=["bad-value", "regsweep-only-key", "set-twice", "templated", "no-meta"],
)
def test_werf_errors_name_the_field(
    tmp_path: Path, werf: str, regsweep_extra: str, field: str, words: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(
            _write(tmp_path, "r.yaml", REGSWEEP + regsweep_extra),
            _write(tmp_path, "werf.yaml", werf),
        )
    assert info.value.field == field
    assert words in str(info.value)


def test_cli_bad_werf_config_exits_2(tmp_path: Path) -> None:
    done = run_cli(
        "plan",
        "--config",
        str(_write(tmp_path, "r.yaml", REGSWEEP)),
        "--werf-config",
        str(_write(tmp_path, "werf.yaml", WERF.replace("last: 2", "last: -3"))),
    )
    assert done.returncode == 2
    assert "cleanup.keepPolicies[1].imagesPerReference.last" in done.stderr
