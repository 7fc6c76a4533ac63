"""`regsweep restore` from the ledger alone, and a ledger that cannot be trusted is refused
before anything is written (issues #13 item 5, #14 item 3)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.demo.images import push_image
from flows.demo.registry_server import LocalRegistry
from tasks.delete.errors import LedgerError
from tasks.delete.restore import RestoreFilter, restorable
from tasks.registry.client import RegistryClient
from tests.cli import run_cli
from tests.delete.helpers import OLD, scan_and_delete, setup
from tests.skopeo import assert_every_tag_pulls, skopeo_tags


def deleted_b(registry: LocalRegistry, ledger: Path) -> dict[str, str]:
    async def go() -> dict[str, str]:
        async with RegistryClient(registry.url) as client:
            digests = await setup(client)
            await scan_and_delete(client, {"b", "c"}, ledger)
            return digests

    return asyncio.run(go())


def test_restore_needs_only_the_ledger_and_tells_restored_from_skipped(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.jsonl"
    digests = deleted_b(registry, ledger)

    async def reuse_c() -> str:  # CI pushes a new image under the deleted tag c
        async with RegistryClient(registry.url) as client:
            return await push_image(client, "r", ["c"], created=OLD, seed="c-new")

    new_c = asyncio.run(reuse_c())
    done = run_cli("restore", "--ledger", str(ledger), env=None)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert f"restored r@{digests['b']}" in lines
    assert "  tag b: restored" in lines
    assert f"restored r@{digests['c']}" in lines
    assert f"  tag c: skipped, it now points at {new_c}" in lines
    assert "b" in assert_every_tag_pulls(registry.url, ["r"])["r"]


def test_restore_takes_a_short_digest_and_a_filter_that_matches_nothing_is_an_error(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.jsonl"
    digests = deleted_b(registry, ledger)
    before = skopeo_tags(registry.url, "r")
    for flags in (["--digest", "sha256:" + "0" * 12], ["--repository", "nope"]):
        done = run_cli("restore", "--ledger", str(ledger), *flags)
        assert done.returncode == 2, done.stdout + done.stderr  # was "nothing to restore", 0
        said = " ".join(done.stderr.split())
        assert flags[0] in said and "no deletion in" in said and "Traceback" not in said
    assert skopeo_tags(registry.url, "r") == before
    short = digests["b"].removeprefix("sha256:")[:10]  # as `regsweep explain` users copy it
    done = run_cli("restore", "--ledger", str(ledger), "--digest", short)
    assert done.returncode == 0, done.stderr
    assert f"restored r@{digests['b']}" in done.stdout.splitlines()
    assert f"restored r@{digests['c']}" not in done.stdout.splitlines()  # only the one named


@pytest.mark.parametrize(
    "content",
    [b"\x00\x01\x02binary\xff", b"hello\nworld\n", b"{}\n", b"[1, 2]\n"],
    ids=["binary", "text", "empty-object", "json-list"],
)
def test_a_file_that_is_not_a_ledger_exits_2(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "not-a-ledger"
    path.write_bytes(content)
    done = run_cli("restore", "--ledger", str(path), "--registry", "http://127.0.0.1:9")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert str(path) in done.stderr.replace("\n", "")


def _tamper(record: dict[str, object], how: str) -> None:
    manifest = base64.b64decode(str(record["manifest"]))
    if how == "digest":
        record["digest"] = "sha256:" + "0" * 64
    elif how == "digest-path":
        record["digest"] = "sha256:x/../keep-1"
    elif how == "media-type":
        record["media_type"] = "application/vnd.oci.image.index.v1+json"
    elif how == "manifest":
        record["manifest"] = base64.b64encode(manifest.replace(b"sha256", b"sha512")).decode()
    elif how == "repository":
        record["repository"] = "../../etc"
    elif how == "tags":
        record["tags"] = ["ok", "bad\r\ntag"]
    elif how == "base64":
        record["manifest"] = "!!!not base64!!!"


@pytest.mark.parametrize(
    "how", ["digest", "digest-path", "media-type", "manifest", "repository", "tags", "base64"]
)
def test_a_tampered_record_is_refused_before_anything_is_written(
    registry: LocalRegistry, tmp_path: Path, how: str
) -> None:
    ledger = tmp_path / "ledger.jsonl"
    deleted_b(registry, ledger)
    lines = ledger.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    last_pending = max(i for i, r in enumerate(records) if r["state"] == "pending")
    _tamper(records[last_pending], how)
    ledger.write_text("".join(json.dumps(r) + "\n" for r in records))
    before = skopeo_tags(registry.url, "r")
    done = run_cli("restore", "--ledger", str(ledger))
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{ledger}:{last_pending + 1}" in done.stderr.replace("\n", "")
    assert skopeo_tags(registry.url, "r") == before  # nothing restored, not even the good one


def test_a_torn_last_line_is_tolerated_but_a_torn_middle_line_is_not(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.jsonl"
    deleted_b(registry, ledger)
    text = ledger.read_text()
    (tmp_path / "torn-end.jsonl").write_text(text + text.splitlines()[0][:40])
    assert len(restorable(tmp_path / "torn-end.jsonl", registry.url, RestoreFilter())) == 2
    lines = text.splitlines(keepends=True)
    lines[1] = lines[1][:30] + "\n"
    (tmp_path / "torn-middle.jsonl").write_text("".join(lines))
    with pytest.raises(LedgerError, match=r"torn-middle\.jsonl:2"):
        restorable(tmp_path / "torn-middle.jsonl", registry.url, RestoreFilter())


@pytest.fixture(scope="module")
def good_ledger(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    with LocalRegistry(tmp_path_factory.mktemp("registry")) as registry:
        ledger = tmp_path_factory.mktemp("ledger") / "ledger.jsonl"
        deleted_b(registry, ledger)
        return [ledger.read_text(), registry.url]


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    derandomize=True,
)
@given(data=st.data())
def test_ledger_fuzz_restores_only_records_that_hold_together(
    good_ledger: list[str], tmp_path: Path, data: st.DataObject
) -> None:
    """Any edit of a good ledger either leaves records that all check out (the untouched
    ones) or makes `restorable` refuse the whole file: never a record that does not hash to
    its digest or names an invalid repository, tag or media type."""
    text, url = good_ledger
    lines = text.encode().splitlines(keepends=True)
    at = data.draw(st.integers(0, len(lines) - 1))
    edit = data.draw(st.sampled_from(["byte", "field", "line", "manifest"]))
    if edit == "manifest":  # still a valid manifest, of other content than its digest
        record = json.loads(lines[at])
        body = json.loads(base64.b64decode(record["manifest"]) or b"{}")
        body[data.draw(st.sampled_from(["schemaVersion", "annotations", "x"]))] = data.draw(
            st.integers()
        )
        record["manifest"] = base64.b64encode(json.dumps(body).encode()).decode()
        lines[at] = json.dumps(record).encode() + b"\n"
    elif edit == "byte":
        raw = bytearray(lines[at])
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
        lines[at] = bytes(raw)
    elif edit == "field":
        record = json.loads(lines[at])
        name = data.draw(st.sampled_from(sorted(record)))
        record[name] = data.draw(
            st.one_of(st.text(max_size=80), st.integers(), st.none(), st.lists(st.text()))
        )
        lines[at] = json.dumps(record).encode() + b"\n"
    else:
        lines.insert(at, data.draw(st.binary(max_size=200)) + b"\n")
    path = tmp_path / "fuzzed.jsonl"
    path.write_bytes(b"".join(lines))
    try:
        chosen = restorable(path, url, RestoreFilter())
    except LedgerError:
        return
    for record in chosen:  # an oracle of its own, not check_record
        raw = base64.b64decode(record.manifest)
        assert "sha256:" + hashlib.sha256(raw).hexdigest() == record.digest
        assert re.fullmatch(
            r"[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*", record.repository
        )
        assert all(re.fullmatch(r"\w[\w.-]{0,127}", t, re.ASCII) for t in record.tags)
        assert json.loads(raw).get("mediaType", record.media_type) == record.media_type
