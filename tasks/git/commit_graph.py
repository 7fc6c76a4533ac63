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
    """Commits of the graph in graph order (each layer sorted by SHA), parents as rows:
    the parents of row i are ``parent_rows[parent_offsets[i]:parent_offsets[i + 1]]``, first
    parent first."""

    shas: list[str]
    parent_offsets: np.ndarray  # int64, one more than there are commits
    parent_rows: np.ndarray  # int64
    times: np.ndarray  # int64 committer time, epoch seconds


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
    shas: list[str] = []
    offsets: list[np.ndarray] = [np.zeros(1, dtype=np.int64)]
    rows: list[np.ndarray] = []
    times: list[np.ndarray] = []
    for file in files:
        layer = _read_layer(file.read_bytes())
        if layer is None:
            return None
        oids, records, edges, _ = layer
        text = binascii.hexlify(oids).decode("ascii")
        shas.extend(text[i : i + 2 * HASH_LEN] for i in range(0, len(text), 2 * HASH_LEN))
        counts, layer_rows = _parents(records["p1"].astype(np.int64), records["p2"], edges)
        offsets.append(offsets[-1][-1] + np.cumsum(counts))
        rows.append(layer_rows)
        times.append(((records["gen"] & 3).astype(np.int64) << 32) | records["time"])
    parent_rows = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    if parent_rows.size and parent_rows.max() >= len(shas):
        return None  # a parent position outside the graph: not a file we can trust
    return CommitGraph(
        shas=shas,
        parent_offsets=np.concatenate(offsets),
        parent_rows=parent_rows,
        times=np.concatenate(times) if times else np.zeros(0, dtype=np.int64),
    )


def _parents(
    first: np.ndarray, second: np.ndarray, edges: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """(parent count per commit, parent rows in order) of one layer. `second` is a parent
    position, NO_PARENT, or for an octopus merge EXTRA_EDGES | where its 2nd.. parents start
    in `edges` (the last one flagged with EXTRA_EDGES)."""
    one = first != NO_PARENT
    two = one & (second != NO_PARENT)
    octopus = np.flatnonzero(two & ((second & EXTRA_EDGES) != 0))
    extra: list[list[int]] = []
    for at in (second[octopus] & ~np.uint32(EXTRA_EDGES)).tolist():
        more = []
        while True:
            edge = edges[at]
            more.append(edge & ~EXTRA_EDGES)
            if edge & EXTRA_EDGES:
                break
            at += 1
        extra.append(more)
    counts = one.astype(np.int64) + two
    counts[octopus] = 1 + np.array([len(m) for m in extra], dtype=np.int64)
    starts = np.cumsum(counts) - counts
    rows = np.empty(int(counts.sum()), dtype=np.int64)
    rows[starts[one]] = first[one]
    plain = two.copy()
    plain[octopus] = False
    rows[starts[plain] + 1] = second[plain]
    for start, more in zip(starts[octopus].tolist(), extra, strict=True):
        rows[start + 1 : start + 1 + len(more)] = more
    return counts, rows


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
