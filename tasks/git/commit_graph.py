"""Git's commit-graph file: parents and committer times of many commits without reading them.

`git gc`, `git fetch` (with fetch.writeCommitGraph) and `git commit-graph write` keep a
commit-graph at ``objects/info/commit-graph`` or as a chain under
``objects/info/commit-graphs/``: fixed-size records of every commit's parents and committer
time. Reading it is what makes `git rev-list` fast; pygit2 has no API for it, and walking
with pygit2 decompresses every commit into a Python object instead.

Only what the graph says for sure is used: a file whose checksum, signature or hash
version (SHA-1) does not match is ignored, as is every graph when `core.commitGraph` is
false or replace refs / grafts rewrite history (Git ignores the graph then, too).
Commits newer than the graph are read from the repository as usual.

Format: Documentation/gitformat-commit-graph.txt in Git.
"""

from __future__ import annotations

import binascii
import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pygit2

NO_PARENT = 0x70000000
EXTRA_EDGES = 0x80000000
HASH_LEN = 20  # SHA-1; SHA-256 repositories are read without the graph
_RECORD = np.dtype(
    [("tree", f"V{HASH_LEN}"), ("p1", ">u4"), ("p2", ">u4"), ("gen", ">u4"), ("time", ">u4")]
)


@dataclass
class CommitGraph:
    """Commits of the graph, in graph order: sha, parents (as shas), committer time (s)."""

    shas: list[str]
    parents: list[list[str]]
    times: list[int]


def read_commit_graph(repo: pygit2.Repository) -> CommitGraph | None:
    """The commits of `repo`'s commit-graph, or None when there is none Git would use."""
    if _graph_disabled(repo):
        return None
    info = Path(repo.path) / "objects" / "info"
    chain = info / "commit-graphs" / "commit-graph-chain"
    if chain.exists():
        names = chain.read_text().split()
        files = [info / "commit-graphs" / f"graph-{name}.graph" for name in names]
    elif (info / "commit-graph").exists():
        files = [info / "commit-graph"]
    else:
        return None
    try:
        return _read_graph(files)
    except (OSError, ValueError, IndexError, struct.error):
        return None  # unreadable or inconsistent: walk the repository instead


def _read_graph(files: list[Path]) -> CommitGraph | None:
    layers = []
    for file in files:
        layer = _read_layer(file.read_bytes())
        if layer is None:
            return None
        layers.append(layer)
    shas: list[str] = []
    for layer_oids, _, _, _ in layers:
        text = binascii.hexlify(layer_oids).decode("ascii")
        shas.extend(text[i : i + 2 * HASH_LEN] for i in range(0, len(text), 2 * HASH_LEN))
    parents: list[list[str]] = []
    times: list[int] = []
    for _, records, edges, _ in layers:
        p1 = records["p1"].tolist()
        p2 = records["p2"].tolist()
        times.extend((((records["gen"] & 3).astype(np.int64) << 32) | records["time"]).tolist())
        for first, second in zip(p1, p2, strict=True):
            if first == NO_PARENT:
                parents.append([])
            elif second == NO_PARENT:
                parents.append([shas[first]])
            elif not second & EXTRA_EDGES:
                parents.append([shas[first], shas[second]])
            else:
                more = [shas[first]]
                at = second & ~EXTRA_EDGES
                while True:
                    edge = edges[at]
                    more.append(shas[edge & ~EXTRA_EDGES])
                    if edge & EXTRA_EDGES:
                        break
                    at += 1
                parents.append(more)
    return CommitGraph(shas, parents, times)


def _graph_disabled(repo: pygit2.Repository) -> bool:
    try:
        if not repo.config.get_bool("core.commitGraph"):
            return True
    except KeyError:
        pass  # unset: on, as in Git
    if (Path(repo.path) / "info" / "grafts").exists():
        return True
    return any(name.startswith("refs/replace/") for name in repo.references)


def _read_layer(data: bytes) -> tuple[bytes, np.ndarray, list[int], int] | None:
    """(oids, records, extra edges, count) of one graph file, or None if it is not one we
    can trust: wrong signature, version or hash, bad checksum, missing chunks."""
    if len(data) < 8 + HASH_LEN or data[:4] != b"CGPH" or data[4] != 1 or data[5] != 1:
        return None
    if hashlib.sha1(data[:-HASH_LEN]).digest() != data[-HASH_LEN:]:
        return None
    chunk_count = data[6]
    table = {}
    for i in range(chunk_count + 1):
        at = 8 + 12 * i
        chunk_id, offset = struct.unpack_from(">4sQ", data, at)
        table[chunk_id] = offset
    offsets = sorted(table.values())
    if not {b"OIDF", b"OIDL", b"CDAT"} <= table.keys():
        return None
    count = struct.unpack_from(">I", data, table[b"OIDF"] + 4 * 255)[0]
    oid_start = table[b"OIDL"]
    oids = data[oid_start : oid_start + count * HASH_LEN]
    records = np.frombuffer(data, dtype=_RECORD, count=count, offset=table[b"CDAT"])
    edges: list[int] = []
    if b"EDGE" in table:
        start = table[b"EDGE"]
        end = next(o for o in offsets if o > start)
        edges = np.frombuffer(data, dtype=">u4", count=(end - start) // 4, offset=start).tolist()
    if len(oids) != count * HASH_LEN:
        return None
    return oids, records, edges, count
