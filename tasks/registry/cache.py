"""A content-addressed on-disk cache of manifests and image configs.

Content under a digest never changes, so an entry is valid forever: a rescan only resolves
tags (HEAD) and fetches what it has not seen, and the delete step takes the manifest bytes
for its ledger from here. Every read is checked against its digest; a corrupt or torn
entry is dropped and fetched again. Layout: `<root>/sha256/<2 hex>/<hex>`.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


class ContentCache:
    """Bytes by `sha256:` digest under `root` (created on first write)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.hits = 0
        self.misses = 0

    def _path(self, digest: str) -> Path | None:
        algorithm, _, hexdigest = digest.partition(":")
        if algorithm != "sha256" or len(hexdigest) != 64:
            return None
        return self.root / algorithm / hexdigest[:2] / hexdigest

    def is_empty(self) -> bool:
        """True before anything was cached (a first, cold scan)."""
        return not (self.root / "sha256").is_dir()

    def get(self, digest: str) -> bytes | None:
        """The bytes stored under `digest`, or None (absent or not matching the digest)."""
        path = self._path(digest)
        try:
            data = path.read_bytes() if path is not None else None
        except OSError:
            data = None
        if data is None or "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            self.misses += 1
            if data is not None and path is not None:
                path.unlink(missing_ok=True)
            return None
        self.hits += 1
        return data

    def put(self, digest: str, data: bytes) -> None:
        """Store `data` under `digest` (ignored unless the bytes match the digest)."""
        path = self._path(digest)
        if path is None or "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            return
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            os.replace(temporary, path)
        except OSError:
            Path(temporary).unlink(missing_ok=True)
