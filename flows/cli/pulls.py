"""`regsweep pulls serve`: the receiver of the registry's notifications."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from flows.cli.app import (
    DEFAULT_CONFIG,
    ConfigOption,
    app,
    load,
)
from flows.cli.render import (
    bad_argument,
    tell,
)

pulls_app = typer.Typer(help="Pull records: what the registry says was pulled.")
app.add_typer(pulls_app, name="pulls")


@pulls_app.command("serve")
def pulls_serve(
    config: ConfigOption = DEFAULT_CONFIG,
    listen: Annotated[
        str, typer.Option("--listen", help="HOST:PORT to receive notifications on")
    ] = "127.0.0.1:8686",
) -> None:
    """Receive the registry's notifications (POST /events) and record pulls, until stopped."""
    from tasks.core.secrets import secret_value
    from tasks.pulls.errors import PullsError
    from tasks.pulls.service import serve
    from tasks.pulls.store import PullStore

    cfg = load(config)
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        bad_argument("--listen", f"must be HOST:PORT, not {listen!r}")
    token = os.environ.get("REGSWEEP_PULLS_TOKEN", "")
    if not token and cfg.pulls.token_secret:
        token = secret_value(cfg.pulls.token_secret, "pulls.tokenSecret")
    if not token:
        bad_argument(
            "pulls.tokenSecret",
            "no bearer token: set REGSWEEP_PULLS_TOKEN or name a Prefect Secret block here",
        )
    try:
        store = PullStore(cfg.pulls.database)
    except PullsError as exc:
        bad_argument("pulls.database", str(exc))
    tell(f"recording pulls in {cfg.pulls.database}; the registry posts to http://{listen}/events")
    serve(store, token, cfg.pulls.ignore_user_agents, host, int(port))
