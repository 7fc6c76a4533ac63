"""Shared by the vendor backend tests: images pushed straight to the real registry."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from flows.demo.images import push_image
from tasks.registry.client import RegistryClient

OLD = datetime.now(UTC) - timedelta(days=30)


def push(url: str, images: dict[str, list[str]]) -> dict[str, str]:
    """Push one image per `repository:name` key, with the tags given; name -> digest."""

    async def go() -> dict[str, str]:
        async with RegistryClient(url) as client:
            return {
                name: await push_image(client, name.rsplit(":", 1)[0], tags, created=OLD, seed=name)
                for name, tags in images.items()
            }

    return asyncio.run(go())
