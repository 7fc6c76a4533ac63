"""`regsweep restore`: deleted manifests and their tags put back from the ledger."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli.app import (
    app,
    load,
    moment_of,
)
from flows.cli.render import (
    console,
    fail,
    say,
)


@app.command()
def restore(
    ledger: Annotated[Path, typer.Option("--ledger", help="ledger written by `run --apply`")],
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="take the registry URL from here")
    ] = None,
    registry: Annotated[
        str | None,
        typer.Option("--registry", help="registry URL (default: the one the ledger records)"),
    ] = None,
    repository: Annotated[
        str | None, typer.Option("--repository", help="only this repository's deletions")
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="only deletions at or after this time (ISO 8601)")
    ] = None,
    digest: Annotated[
        str | None,
        typer.Option(
            "--digest", help="only this digest (a unique prefix will do, with or without sha256:)"
        ),
    ] = None,
) -> None:
    """Put deleted manifests and their tags back from the ledger (the ledger alone is enough:
    it records the registry URL; credentials come from docker config or the environment)."""
    import asyncio

    from tasks.core.config import registry_only
    from tasks.core.errors import ConfigError
    from tasks.delete.errors import DeletionError, LedgerError
    from tasks.delete.restore import Restored, RestoreFilter, ledger_registries, restorable
    from tasks.delete.restore import restore as do_restore
    from tasks.registry.errors import RegistryError
    from tasks.registry.stage import make_client

    if not ledger.is_file():
        raise fail(ConfigError("--ledger", f"{ledger} is not a file"))
    selection = RestoreFilter(repository, digest, moment_of(since) if since else None)
    base = load(config) if config else None
    given = registry or (base.registry.url if base else None)
    try:
        if given is not None:  # matched by host: works for ledgers without URLs too
            settings = registry_only(given, base)
            records = restorable(ledger, settings.registry.host, selection)
        else:
            recorded = ledger_registries(ledger)
            if "" in recorded or len(recorded) > 1:
                which = "it predates registry URLs" if "" in recorded else ", ".join(recorded)
                raise ConfigError("--registry", f"the ledger names no single registry ({which})")
            if not recorded:
                records = []
            else:
                settings = registry_only(recorded[0], field="--ledger")
                records = restorable(ledger, recorded[0], selection)
    except (LedgerError, OSError) as exc:
        raise fail(ConfigError("--ledger", str(exc))) from None
    except ConfigError as exc:
        raise fail(exc) from None
    filters = (("--repository", repository), ("--since", since), ("--digest", digest))
    asked = [f"{flag} {value}" for flag, value in filters if value]
    if not records and asked:  # a filter that matches nothing is a mistake, not a no-op
        raise fail(
            ConfigError(asked[0].split()[0], f"no deletion in {ledger} matches {', '.join(asked)}")
        )
    matched = sorted({record.digest for record in records})
    if digest and len(matched) > 1:
        raise fail(
            ConfigError(
                "--digest",
                f"{digest} matches {len(matched)} digests: give more of it ({matched[0]}, ...)",
            )
        )
    if not records:
        console.print("nothing to restore: the ledger records no deletion")
        return

    async def go() -> list[Restored]:
        # The scan's client factory: credentials, vendor, limits and cache as `run` has them.
        async with make_client(settings) as client:
            return await do_restore(client, records)

    try:
        restored = asyncio.run(go())
    except LedgerError as exc:
        raise fail(ConfigError("--ledger", str(exc))) from None
    except (DeletionError, RegistryError, ConfigError) as exc:
        raise fail(exc) from None
    for done in restored:
        untag = done.record.action == "untag"  # the digest stayed: only its tag comes back
        say(f"{'re-tagged' if untag else 'restored'} {done.record.repository}@{done.record.digest}")
        for tag in done.tags:
            say(f"  tag {tag}: restored")
        for tag, now_at in sorted(done.skipped.items()):
            say(f"  tag {tag}: skipped, it now points at {now_at}")
    if restored:
        window = load(config).safety.keep_restored_for if config else None
        from tasks.core.duration import format_duration

        how_long = format_duration(window) if window else "7 days by default"
        say(
            f"later runs keep what was restored for safety.keepRestoredFor ({how_long}) from "
            "now (keep reason `restored`); to keep an image for good, add it to the file "
            "cleanup.keepList names, e.g. "
            f"{restored[0].record.repository}@{restored[0].record.digest}"
        )
