"""A run's results as Prometheus metrics, pushed to a Pushgateway and/or written for the node
exporter's textfile collector (`metrics` in the configuration).

Prometheus' advice for batch jobs: the key metric is the time of the last success. A run
pushes with `pushadd` (only the metrics it sends are replaced), and a failed run does not
send `regsweep_last_success_timestamp_seconds`: the last success stays where it was. The
textfile is rewritten whole, so a failed run carries the previous file's last success over.

Every metric is a gauge of the last run (a batch job's values, not a counter across runs),
labelled with bounded values only: repositories, actions, reasons, outcomes, stages; never a
digest or a tag. The Pushgateway groups by `job` and `registry` (the registry's host); the
textfile carries `registry` as a label. A push or a write that fails is a warning in the
run's log, never a failed cleanup.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from prometheus_client import CollectorRegistry, Gauge, pushadd_to_gateway, write_to_textfile
from prometheus_client.exposition import basic_auth_handler, default_handler
from prometheus_client.parser import text_string_to_metric_families

from flows.result import RunResult
from tasks.core.config import Config
from tasks.registry.retry import REQUESTS, RequestCounts

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")

LAST_SUCCESS = "regsweep_last_success_timestamp_seconds"
USERNAME_VARIABLE = "REGSWEEP_PUSHGATEWAY_USERNAME"
PASSWORD_VARIABLE = "REGSWEEP_PUSHGATEWAY_PASSWORD"


@dataclass
class RunFigures:
    """What a run reports, as the metrics need it (from `RunResult`, or less when the run
    failed before it had one)."""

    success: bool
    apply: bool
    finished: float  # epoch seconds
    stage_seconds: dict[str, float] = field(default_factory=dict)  # stage -> wall time
    summary: Sequence[Mapping[str, Any]] = field(default_factory=list)  # per repository
    reasons: Sequence[Mapping[str, Any]] = field(default_factory=list)  # digests per reason
    outcomes: Mapping[str, int] = field(default_factory=dict)  # digests per outcome
    incomplete: int = 0  # repositories whose listing was incomplete
    verify_failures: int = 0  # what the verify step found missing or dangling
    dangling: Mapping[str, int] = field(default_factory=dict)  # tags naming nothing: found...
    requests: RequestCounts = field(default_factory=RequestCounts)  # HTTP requests sent


def run_metrics(
    figures: RunFigures, labels: Mapping[str, str], last_success: float | None = None
) -> CollectorRegistry:
    """The metrics of one run (`labels` on every one of them); the last success is the
    run's end when it succeeded, else `last_success` (None: not sent)."""
    registry = CollectorRegistry()
    names = list(labels)

    def gauge(name: str, help: str, *more: str) -> Gauge:
        return Gauge(name, help, [*names, *more], registry=registry)

    def put(metric: Gauge, value: float, **extra: str) -> None:
        (metric.labels(**labels, **extra) if labels or extra else metric).set(value)

    put(
        gauge("regsweep_last_completion_timestamp_seconds", "When the last run ended (Unix time)."),
        figures.finished,
    )
    if figures.success:
        last_success = figures.finished
    if last_success is not None:
        put(gauge(LAST_SUCCESS, "When the last successful run ended (Unix time)."), last_success)
    put(
        gauge("regsweep_last_run_success", "1 when the last run succeeded, else 0."),
        figures.success,
    )
    put(
        gauge("regsweep_last_run_apply", "1 when the last run deleted (--apply), 0 when dry."),
        figures.apply,
    )
    seconds = gauge(
        "regsweep_last_run_duration_seconds", "Wall time of the last run, by stage.", "stage"
    )
    for stage, value in figures.stage_seconds.items():
        put(seconds, value, stage=stage)
    images = gauge(
        "regsweep_plan_images",
        "Digests the plan keeps or deletes, by repository.",
        "repository",
        "action",
    )
    untags = gauge("regsweep_plan_untags", "Tags the plan removes beside kept ones.", "repository")
    reclaimable = gauge(
        "regsweep_plan_reclaimable_bytes",
        "Bytes the plan's deletions free after garbage collection.",
        "repository",
    )
    for row in figures.summary:
        repository = str(row["repository"])
        put(images, row["kept"], repository=repository, action="keep")
        put(images, row["deleted"], repository=repository, action="delete")
        put(untags, row.get("untagged") or 0, repository=repository)
        put(reclaimable, row["bytes_reclaimable"], repository=repository)
    by_reason = gauge(
        "regsweep_plan_images_by_reason",
        "Digests by the plan's action and first reason.",
        "action",
        "reason",
    )
    for row in figures.reasons:
        put(by_reason, row["digests"], action=str(row["action"]), reason=str(row["reason"]))
    outcomes = gauge(
        "regsweep_last_run_outcomes", "Digests and tags by the delete step's outcome.", "outcome"
    )
    for outcome, count in figures.outcomes.items():
        put(outcomes, count, outcome=outcome)
    put(
        gauge(
            "regsweep_last_run_incomplete_repositories",
            "Repositories the last run could not read whole (nothing deleted there).",
        ),
        figures.incomplete,
    )
    put(
        gauge(
            "regsweep_last_run_verify_failures",
            "What the last apply's verify step found missing or dangling.",
        ),
        figures.verify_failures,
    )
    dangling = gauge(
        "regsweep_last_run_dangling_tags",
        "Tags naming no manifest (a deletion cut short): found, and repaired by the run.",
        "state",
    )
    for state in ("found", "repaired"):
        put(dangling, figures.dangling.get(state, 0), state=state)
    requests = gauge(
        "regsweep_last_run_http_requests",
        "HTTP requests the last run sent, by API (registry or the vendor's), method and "
        "status (none: no answer).",
        "api",
        "method",
        "status",
    )
    for (api, method, status), count in sorted(figures.requests.requests.items()):
        put(requests, count, api=api, method=method, status=status)
    retries = gauge(
        "regsweep_last_run_http_retries",
        "Requests of the last run that were retries, by API and method.",
        "api",
        "method",
    )
    for (api, method), count in sorted(figures.requests.retries.items()):
        put(retries, count, api=api, method=method)
    return registry


def publish(config: Config, figures: RunFigures) -> list[str]:
    """Push and/or write the run's metrics where `metrics` says; return a warning per
    destination that failed (the run goes on)."""
    settings = config.metrics
    warnings: list[str] = []
    host = config.registry.host
    if settings.pushgateway:
        try:
            pushadd_to_gateway(
                settings.pushgateway,
                job=settings.job,
                registry=run_metrics(figures, {}),
                grouping_key={"registry": host},
                handler=_push_handler(),
                timeout=10,
            )
        except Exception as exc:  # any failure of the push is a warning, by design
            warnings.append(f"metrics not pushed to {settings.pushgateway}: {exc}")
    if settings.textfile:
        path = Path(settings.textfile).expanduser()
        try:
            carried = None if figures.success else _last_success_in(path, host)
            registry = run_metrics(figures, {"registry": host}, carried)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_to_textfile(str(path), registry)
        except Exception as exc:  # a full disk, a mangled old file: a warning, by design
            warnings.append(f"metrics not written to {path}: {exc}")
    for warning in warnings:
        log.warning("%s", warning)
    return warnings


def _push_handler() -> Any:
    """Basic auth from the environment for a protected Pushgateway, else none."""
    username = os.environ.get(USERNAME_VARIABLE, "")
    if not username:
        return default_handler
    password = os.environ.get(PASSWORD_VARIABLE, "")

    def handler(
        url: str, method: str, timeout: float | None, headers: list[tuple[str, str]], data: bytes
    ) -> Any:
        return basic_auth_handler(url, method, timeout, headers, data, username, password)

    return handler


def _last_success_in(path: Path, host: str) -> float | None:
    """The last success the textfile at `path` holds for `host` (a failed run carries it
    over), else None."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == LAST_SUCCESS and sample.labels.get("registry") == host:
                return float(sample.value)
    return None


class RunMeter:
    """What one run measures as it goes: wall time per stage and of the whole (`total`,
    from its creation), and the HTTP requests sent since its creation."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.seconds: dict[str, float] = {}
        self._requests_before = REQUESTS.snapshot()

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.monotonic() - start

    def timed(self, name: str, work: Callable[P, T]) -> Callable[P, T]:
        """`work`, its calls timed as stage `name`."""

        def run(*args: P.args, **kwargs: P.kwargs) -> T:
            with self.stage(name):
                return work(*args, **kwargs)

        return run

    def finish(self) -> float:
        """Record the total; return the moment, in Unix time."""
        self.seconds["total"] = time.monotonic() - self.started
        return time.time()

    def requests(self) -> RequestCounts:
        return REQUESTS.since(self._requests_before)

    def failed(self, apply: bool) -> RunFigures:
        """The figures of a run that failed before its report."""
        return RunFigures(False, apply, self.finish(), self.seconds, requests=self.requests())


def run_figures(result: RunResult, success: bool, meter: RunMeter) -> RunFigures:
    """The figures of a run that got as far as its report."""
    return RunFigures(
        success=success,
        apply=result.apply,
        finished=meter.finish(),
        stage_seconds=meter.seconds,
        summary=result.summary,
        reasons=result.reasons,
        outcomes=result.outcomes,
        incomplete=len(result.incomplete),
        verify_failures=len(result.damage),
        dangling=result.dangling,
        requests=meter.requests(),
    )
