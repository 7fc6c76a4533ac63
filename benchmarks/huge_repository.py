"""Peak memory of scanning one repository with 1,000,000 tags (REGSWEEP_BENCH_HUGE_TAGS).

The subject is our memory, not the registry's speed: Distribution's filesystem layout for a
million tags is ~7 million inodes and ~28 GB of directories, so the registry here is a small
asyncio server in its own process that answers the Distribution API from arithmetic (tag
`t0000042` names image 42 mod 1,000; a tag list paged by `n`/`last` with `Link` headers,
manifests and configs served by digest, no referrers API). Its memory is not ours: the
figure is this process's peak RSS (RUSAGE_SELF) around `read_registry`, the scan a run does.

Target: well under 1 GiB (before the bounded worker pool, a task per tag took 3.0 GiB).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from _common import SMOKE, Results

from tasks.core import mediatypes
from tasks.core.config import parse_config
from tasks.registry.stage import read_registry

TAGS = int(os.environ.get("REGSWEEP_BENCH_HUGE_TAGS", "5000" if SMOKE else "1000000"))
IMAGES = 50 if SMOKE else 1000
REPOSITORY = "bench/huge"


def _documents() -> tuple[list[tuple[str, bytes]], dict[str, bytes]]:
    """(manifest digest, manifest body) per image, and every blob body by digest."""
    manifests: list[tuple[str, bytes]] = []
    blobs: dict[str, bytes] = {}
    for i in range(IMAGES):
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "created": "2026-01-01T00:00:00Z",
                "config": {"Labels": {"org.opencontainers.image.revision": f"{i:040x}"}},
                "rootfs": {"type": "layers", "diff_ids": []},
            }
        ).encode()
        config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
        blobs[config_digest] = config
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": mediatypes.OCI_MANIFEST,
                "config": {
                    "mediaType": mediatypes.OCI_CONFIG,
                    "digest": config_digest,
                    "size": len(config),
                },
                "layers": [],
            }
        ).encode()
        manifests.append(("sha256:" + hashlib.sha256(manifest).hexdigest(), manifest))
    return manifests, blobs


def _answer(
    method: str, target: str, manifests: list[tuple[str, bytes]], by_digest: dict[str, bytes]
) -> tuple[int, dict[str, str], bytes]:
    url = urlsplit(target)
    prefix = f"/v2/{REPOSITORY}/"
    if url.path == "/v2/":
        return 200, {"Content-Type": "application/json"}, b"{}"
    if url.path == prefix + "tags/list":
        query = parse_qs(url.query)
        size = int(query.get("n", ["1000"])[0])
        start = int(query["last"][0][1:]) + 1 if "last" in query else 0
        names = [f"t{i:07d}" for i in range(start, min(start + size, TAGS))]
        headers = {"Content-Type": "application/json"}
        if start + size < TAGS:
            headers["Link"] = f'<{url.path}?n={size}&last={names[-1]}>; rel="next"'
        return 200, headers, json.dumps({"name": REPOSITORY, "tags": names}).encode()
    if url.path.startswith(prefix + "manifests/"):
        reference = url.path.removeprefix(prefix + "manifests/")
        if reference.startswith("sha256:"):
            body = by_digest.get(reference)
            if body is None:
                return 404, {}, b""
            digest = reference
        else:
            digest, body = manifests[int(reference[1:]) % IMAGES]
        headers = {"Content-Type": mediatypes.OCI_MANIFEST, "Docker-Content-Digest": digest}
        return 200, headers, body
    if url.path.startswith(prefix + "blobs/"):
        body = by_digest.get(url.path.removeprefix(prefix + "blobs/"))
        if body is not None:
            return 200, {"Content-Type": "application/octet-stream"}, body
    return 404, {"Content-Type": "application/json"}, b'{"errors":[{"code":"NAME_UNKNOWN"}]}'


def _serve(ports: multiprocessing.SimpleQueue) -> None:  # type: ignore[type-arg]
    manifests, blobs = _documents()
    by_digest = dict(manifests) | blobs

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                method, target, _ = line.decode().split(" ", 2)
                while await reader.readline() not in (b"\r\n", b""):
                    pass
                status, headers, body = _answer(method, target, manifests, by_digest)
                head = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}"]
                head += [f"{k}: {v}" for k, v in headers.items()]
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
                if method != "HEAD":
                    writer.write(body)
                await writer.drain()
        except (ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    async def serve() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
        ports.put(server.sockets[0].getsockname()[1])
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


def main() -> None:
    context = multiprocessing.get_context("spawn")
    ports = context.SimpleQueue()
    server = context.Process(target=_serve, args=(ports,), daemon=True)
    server.start()
    port = ports.get()
    results = Results()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = parse_config(
                {
                    "registry": {
                        "url": f"http://127.0.0.1:{port}",
                        "repositories": [REPOSITORY],
                        "cache": str(Path(tmp) / "cache"),
                    },
                    "cleanup": {"disableGitHistoryBasedPolicy": True},
                }
            )
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            start = time.perf_counter()
            extraction = read_registry(config)
            elapsed = time.perf_counter() - start
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    finally:
        server.terminate()
    status = extraction.status.iloc[0]
    if not status["complete"] or len(extraction.tags) != TAGS:
        print(f"scan incomplete: {status['error']} ({len(extraction.tags)} tags)")
        sys.exit(1)
    print(
        f"scanned {TAGS:,} tags ({IMAGES:,} images) of one repository in {elapsed:.0f} s "
        f"({TAGS / elapsed:.0f} tags/s); peak RSS {peak:.0f} MiB ({before:.0f} MiB before the scan)"
    )
    results.add("peak_rss_mib", peak, "<=", 1024)
    results.exit()


if __name__ == "__main__":
    main()
