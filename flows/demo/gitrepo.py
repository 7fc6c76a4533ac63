"""Build Git repositories with controlled commit and tagger times (demo and tests).

`GitRepoBuilder` makes a bare `origin.git` and a clone `checkout/` whose remote-tracking
refs are real: commits are made in the clone, pushed to origin, and fetched back with prune,
exactly as a user's CI checkout sees them.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pygit2
from pygit2.enums import FetchPrune

_EMPTY_TREE_FILE = "README"


class GitRepoBuilder:
    """A bare origin plus a clone with remote `origin`; every time is given explicitly."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.origin_path = root / "origin.git"
        self.checkout_path = root / "checkout"
        self.origin = pygit2.init_repository(str(self.origin_path), bare=True)
        self.repo = pygit2.init_repository(str(self.checkout_path))
        self.repo.remotes.create("origin", str(self.origin_path))
        self._counter = 0

    @staticmethod
    def _signature(when: datetime) -> pygit2.Signature:
        delta = when.utcoffset()
        offset = int(delta.total_seconds() // 60) if delta is not None else 0
        return pygit2.Signature("CI", "ci@example.com", int(when.timestamp()), offset)

    def commit(
        self,
        branch: str,
        when: datetime,
        message: str = "",
        parents: list[str] | None = None,
    ) -> str:
        """Commit on local `branch` at `when` (parents default to the branch head); return SHA."""
        ref_name = f"refs/heads/{branch}"
        if parents is None:
            existing = self.repo.references.get(ref_name)
            parents = [str(existing.target)] if existing is not None else []
        self._counter += 1
        blob = self.repo.create_blob(f"{branch} {self._counter}\n".encode())
        builder = self.repo.TreeBuilder()
        builder.insert(_EMPTY_TREE_FILE, blob, pygit2.GIT_FILEMODE_BLOB)
        tree = builder.write()
        signature = self._signature(when)
        oid = self.repo.create_commit(
            None,
            signature,
            signature,
            message or f"{branch} change {self._counter}",
            tree,
            [pygit2.Oid(hex=p) for p in parents],
        )
        self.repo.references.create(ref_name, oid, force=True)
        return str(oid)

    def tag(self, name: str, sha: str, when: datetime | None = None) -> None:
        """Tag `sha`: annotated with tagger time `when`, or lightweight when `when` is None."""
        if when is None:
            self.repo.references.create(f"refs/tags/{name}", pygit2.Oid(hex=sha))
        else:
            self.repo.create_tag(
                name,
                pygit2.Oid(hex=sha),
                pygit2.enums.ObjectType.COMMIT,
                self._signature(when),
                f"release {name}",
            )

    def push(self, *branches: str, tags: bool = True) -> None:
        """Push `branches` (and every tag) to origin, then fetch with prune."""
        specs = [f"+refs/heads/{b}:refs/heads/{b}" for b in branches]
        if tags:
            specs += [n for n in self.repo.references if n.startswith("refs/tags/")]
        if specs:
            self.repo.remotes["origin"].push(specs)
        self.fetch()

    def delete_remote_branch(self, branch: str) -> None:
        """Delete `branch` on origin and prune it here; the local branch stays."""
        self.origin.references.delete(f"refs/heads/{branch}")
        self.fetch()

    def fetch(self) -> None:
        self.repo.remotes["origin"].fetch(prune=FetchPrune.PRUNE)
