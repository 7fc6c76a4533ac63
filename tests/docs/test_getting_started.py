"""The manual's Getting started walk (docs/getting-started.md), run as written against a
real registry: its shell lines, with this registry's URL and one of its images in place of
the examples, from a fresh clone with no configuration, no kubeconfig and no regsweep home.
The page promises a first plan in five minutes; the walk's time is printed."""

from __future__ import annotations

import re
import shlex
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flows.demo.gitrepo import GitRepoBuilder
from flows.demo.registry_server import LocalRegistry
from flows.demo.scenario import LABEL
from tests.cli import run_cli
from tests.registry.vendors import push
from tests.skopeo import assert_every_tag_pulls, skopeo_tags

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "getting-started.md"
EXAMPLE_REGISTRY = "https://registry.example.com"
EXAMPLE_IMAGE = "team/app:main-3f2a9c1e"


def walk(section: str) -> list[list[str]]:
    """The regsweep command lines of the first `sh` block under `## {section}`."""
    text = PAGE.read_text().split(f"## {section}\n", 1)[1]
    block = re.search(r"```sh\n(.*?)```", text, re.S)
    assert block, f"no sh block under {section}"
    lines = [shlex.split(line, comments=True) for line in block.group(1).splitlines()]
    return [words for words in lines if words]


def test_the_getting_started_walk_runs_as_written(
    registry: LocalRegistry, tmp_path: Path, prefect_env: dict[str, str]
) -> None:
    now = datetime.now(UTC)
    day = timedelta(days=1)
    git = GitRepoBuilder(tmp_path / "src")
    main = [git.commit("main", now - (9 - i) * day) for i in range(4)]
    old = [
        git.commit("feature-old", now - (8 - i) * day, parents=None if i else [main[0]])
        for i in range(2)
    ]
    git.push("main", "feature-old")
    git.delete_remote_branch("feature-old")  # merged and gone: its images go
    built = {f"team/app:main-{sha[:8]}": sha for sha in main}
    built |= {f"team/app:old-{sha[:8]}": sha for sha in old}
    push(
        registry.url,
        {name: [name.split(":")[1]] for name in built},
        created=now - 10 * day,
        labels={name: {LABEL: sha} for name, sha in built.items()},
    )
    image = f"team/app:main-{main[-1][:8]}"
    home = tmp_path / "home"
    env = dict(
        prefect_env,
        REGSWEEP_HOME=str(home),
        KUBECONFIG=str(tmp_path / "no-kubeconfig"),
    )
    env.pop("REGSWEEP_CONFIG", None)  # the walk finds ./regsweep.yaml

    def run(words: list[str]) -> str:
        assert words[0] == "regsweep", words
        args = [
            w.replace(EXAMPLE_REGISTRY, registry.url)
            .replace(EXAMPLE_IMAGE, image)
            .replace("~/.regsweep", str(home))
            for w in words[1:]
        ]
        if "<run>" in " ".join(args):
            (ledger,) = home.glob("runs/*/ledger.jsonl")
            args = [a.replace(f"{home}/runs/<run>/ledger.jsonl", str(ledger)) for a in args]
        done = run_cli(*args, env=env, cwd=git.checkout_path, timeout=300)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout + done.stderr

    started = time.monotonic()
    first = walk("Five minutes: a first plan")
    assert [w[:2] for w in first if w[0] == "regsweep"] == [
        ["regsweep", "config"],
        ["regsweep", "check"],
        ["regsweep", "plan"],
        ["regsweep", "explain"],
    ]
    said = {words[1]: run(words) for words in first if words[0] == "regsweep"}
    to_plan = time.monotonic() - started
    assert (git.checkout_path / "regsweep.yaml").is_file()
    assert (git.checkout_path / "plan.csv").is_file()
    assert "KEEP" in said["explain"]
    assert skopeo_tags(registry.url, "team/app") == sorted(
        name.split(":")[1] for name in built
    )  # a plan deletes nothing

    for words in walk("Then the first deletion"):
        said[" ".join(words[1:3])] = run(words)
        if words[1:3] == ["run", "--apply"]:
            left = assert_every_tag_pulls(registry.url, ["team/app"])["team/app"]
            assert left == sorted(f"main-{sha[:8]}" for sha in main)
    assert sorted(skopeo_tags(registry.url, "team/app")) == sorted(
        name.split(":")[1] for name in built
    )  # restored, every tag
    whole = time.monotonic() - started
    print(f"getting started: first plan in {to_plan:.1f} s, the whole walk in {whole:.1f} s")
