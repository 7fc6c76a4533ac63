"""werf's own registries, as werf writes them (`tests.werf_fixture`, pushed through the real
registry): regsweep recognises the layout, links stages through werf's meta records, decides
per werf image as werf's cleanup does (parents kept, records following their stages), and a
real client (skopeo) pulls every tag left after an apply, each kept stage's parent chain
included. The expected decisions are werf's, derived from its code (`pkg/cleaning/
cleanup.go`: git history per image over meta records, `protectRelativeStageDescSetByStageDesc`,
`cleanupImageMetadata`, `deleteRejectedStagesWithLinkedTags`, `deleteUnusedCustomTags`)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from flows.demo.registry_server import LocalRegistry
from flows.pipeline import compute_plan, local_stages
from tasks.core.config import load_config
from tasks.core.errors import ConfigError
from tasks.delete.loader import DeleteRequest
from tasks.delete.stage import run_deletion
from tests.skopeo import assert_every_tag_pulls
from tests.werf_fixture import REPOSITORY, WerfFixture, build_werf_repository

NOW = datetime.now(UTC).replace(microsecond=0)


def _config(tmp_path: Path, fixture: WerfFixture, url: str, **cleanup: object) -> Path:
    path = tmp_path / "regsweep.yaml"
    document = {
        "registry": {"url": url, "repositories": [REPOSITORY], "cache": False},
        "git": {"path": str(fixture.git.checkout_path)},
        "kubernetes": {"enabled": False},
        "cleanup": {"keepImagesBuiltWithinLastNHours": 1, **cleanup},
    }
    path.write_text(yaml.safe_dump(document))
    return path


def werf_decisions(fixture: WerfFixture) -> dict[str, str]:
    """What werf's cleanup deletes of the fixture under its default keepPolicies, tag by tag
    (every other tag is kept), followed through its code:
    - the deleted feature branch's stage chain (its final stage and its own from and
      install stages: no kept stage names them as parent) and its meta record;
    - the rejected stage and its record (`deleteRejectedStagesWithLinkedTags`);
    - the meta records of a reused stage at commits no reference's walk hits it through
      (`cleanupImageMetadata` keeps `hitStageIDCommitList` only; a walk hits a stage at the
      newest commit it visits of it, werf's e2e "should keep image metadata only for the
      latest commit (one branch)"): main hits backend's c1 build at c2, its c3 build at c4,
      frontend's c1 build at c3 and its c4 build at c5; tag v1.0.0 hits both images at c2.
      So backend's records at c1 and c3, frontend's at c1 and c4, go."""
    deleted = {
        fixture.stages["backend@f1/from"],
        fixture.stages["backend@f1/install"],
        fixture.stages["backend@f1/final"],
    }
    gone_records = {
        "backend at f1",
        "backend at c1",
        "backend at c3",
        "frontend at c1",
        "frontend at c4",
    }
    deleted |= {
        t for t, kind in fixture.kinds.items() if kind.removeprefix("meta record: ") in gone_records
    }
    deleted |= {t for t, kind in fixture.kinds.items() if "rejected" in kind}
    return {tag: "delete" if tag in deleted else "keep" for tag in fixture.kinds}


@pytest.fixture
def werf_repo(registry: LocalRegistry, tmp_path: Path) -> WerfFixture:
    return build_werf_repository(tmp_path / "werf", registry.url, NOW)


def _plan(config: Path):  # type: ignore[no-untyped-def]
    return compute_plan(load_config(config), NOW, local_stages())


def test_a_werf_repository_is_decided_as_werf_decides_it_and_pulls_whole_after(
    registry: LocalRegistry, werf_repo: WerfFixture, tmp_path: Path
) -> None:
    config = _config(tmp_path, werf_repo, registry.url)
    planned = _plan(config)
    table = planned.plan.table
    ours = dict(zip(table["tag"], table["action"], strict=True))
    reasons = dict(zip(table["tag"], table["reason"], strict=True))
    expected = werf_decisions(werf_repo)
    rows = [
        f"{werf_repo.kinds[t]:38} {t[:40]:40} werf {expected[t]:6} regsweep {ours[t]:6} "
        f"{reasons[t]}"
        for t in sorted(expected, key=lambda t: werf_repo.kinds[t])
    ]
    print("\n".join(rows))
    assert {t: ours[t] for t in expected} == expected
    # Stages are linked through the meta records, per werf image; parents have their reason.
    assert reasons[werf_repo.stages["backend@c1/final"]].startswith("git-policy")
    assert reasons[werf_repo.stages["backend@c1/install"]] == "stage-parent"
    assert reasons["managed-image-backend"] == "werf-record"
    assert any("werf layout" in note for note in planned.plan.notes), planned.plan.notes

    results = run_deletion(
        load_config(config),
        table,
        planned.registry,
        DeleteRequest(apply=True, ledger_path=str(tmp_path / "ledger.jsonl")),
    )
    assert set(results["outcome"]) == {"deleted"}
    left = assert_every_tag_pulls(registry.url, [REPOSITORY])[REPOSITORY]
    assert sorted(left) == sorted(t for t, a in expected.items() if a == "keep")
    for image in ("backend", "frontend"):  # every kept final stage's chain is whole
        for name in ("c1", "c3", "c5"):
            for step in ("from", "install", "final"):
                stage = werf_repo.stages.get(f"{image}@{name}/{step}")
                if stage is not None:
                    assert stage in left, f"{image}@{name}/{step} was deleted"


def test_the_readme_lever_unlinked_delete_is_refused_on_a_werf_repository(
    registry: LocalRegistry, werf_repo: WerfFixture, tmp_path: Path
) -> None:
    config = _config(tmp_path, werf_repo, registry.url, unlinked="delete")
    with pytest.raises(ConfigError) as refused:
        _plan(config)
    assert refused.value.field == "link.source"
    done = subprocess.run(
        [sys.executable, "-m", "flows.cli", "plan", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "link.source" in done.stderr and "werf-managed" in done.stderr


def test_check_says_the_repository_is_werfs(
    registry: LocalRegistry, werf_repo: WerfFixture, tmp_path: Path
) -> None:
    config = _config(tmp_path, werf_repo, registry.url)
    done = subprocess.run(
        [sys.executable, "-m", "flows.cli", "check", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert f"ok   werf: {REPOSITORY}: werf layout recognised" in done.stdout, done.stdout


def test_link_source_oci_reads_it_as_plain_images(
    registry: LocalRegistry, werf_repo: WerfFixture, tmp_path: Path
) -> None:
    """The old reading, on request: every stage unlinked and kept, nothing deleted."""
    config = tmp_path / "oci.yaml"
    document = yaml.safe_load(_config(tmp_path, werf_repo, registry.url).read_text())
    document["link"] = {"source": "oci"}
    config.write_text(yaml.safe_dump(document))
    table = _plan(config).plan.table
    assert set(table["action"]) == {"keep"}
    assert set(table["reason"]) <= {"unlinked", "built-within"}  # records pushed just now


def test_werf_cleanup_report_lists_what_werf_would(
    registry: LocalRegistry, werf_repo: WerfFixture, tmp_path: Path
) -> None:
    """`plan --save-cleanup-report`: werf's JSON, the items werf's cleanup would write."""
    config = _config(tmp_path, werf_repo, registry.url)
    out = tmp_path / "report.json"
    command = ["plan", "-c", str(config), "--save-cleanup-report", str(out)]
    done = subprocess.run(
        [sys.executable, "-m", "flows.cli", *command],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    print(json.dumps(report, indent=1)[:3000])
    assert set(report) == {"command", "dryRun", "repo", "kept", "deleted"}
    assert report["dryRun"] is True and report["repo"].endswith("/" + REPOSITORY)
    deleted = {(i["type"], i.get("tag") or i.get("commit")) for i in report["deleted"]}
    feature = {werf_repo.stages[f"backend@f1/{s}"] for s in ("from", "install", "final")}
    assert {("stage", t) for t in feature} <= deleted
    assert ("imageMetadata", werf_repo.commits["f1"]) in deleted
    assert {t for kind, t in deleted if kind == "rejectedStage"} and {
        t for kind, t in deleted if kind == "rejectedStageMarker"
    }
    kept = {i["tag"]: i.get("reason") for i in report["kept"]}
    assert kept[werf_repo.stages["backend@c5/final"]] == "git policy"
    assert kept[werf_repo.stages["backend@c5/install"]] == "ancestor"
    assert "backend-latest" in kept  # a custom tag, kept with its stage
    # A keep-list built from it with jq's `.kept[] | select(.type == "stage") | .tag`:
    stages = [i["tag"] for i in report["kept"] if i["type"] == "stage"]
    assert len(stages) == len(set(stages)) and not feature & set(stages)


def test_an_image_dropped_from_werf_yaml_loses_its_records_and_stages(
    registry: LocalRegistry, werf_repo: WerfFixture, tmp_path: Path
) -> None:
    """With --werf-config, the images werf.yaml no longer defines are werf's "nonexistent
    images" (`cleanupNonexistentImageMetadata`): their meta records go, and their stages,
    which no Git policy protects any more, with them; the rest is decided as before."""
    werf_yaml = tmp_path / "werf.yaml"
    werf_yaml.write_text("project: project\nconfigVersion: 1\n---\nimage: backend\n")
    config = load_config(_config(tmp_path, werf_repo, registry.url), werf_yaml)
    assert config.link.werf_images == ["backend"]
    table = compute_plan(config, NOW, local_stages()).plan.table
    ours = dict(zip(table["tag"], table["action"], strict=True))
    expected = werf_decisions(werf_repo)
    for tag, kind in werf_repo.kinds.items():
        if kind.startswith(("frontend", "meta record: frontend")):
            expected[tag] = "delete"
    assert {t: ours[t] for t in expected} == expected
