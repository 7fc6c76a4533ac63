"""The configuration file: a pydantic model of DESIGN.md's YAML (camelCase, as werf).

`load_config` is the only entry point; every problem becomes a `ConfigError` whose `field`
is the path of the bad key, e.g. `cleanup.keepPolicies[0].imagesPerReference.last`.
"""

from __future__ import annotations

import difflib
import re
from datetime import timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from tasks.core.duration import MAX_HOURS, format_duration, parse_duration
from tasks.core.errors import ConfigError
from tasks.core.reference import normalise_url, registry_host, registry_names
from tasks.core.registry_kinds import REGISTRY_KINDS
from tasks.core.werf import (
    merge_werf_cleanup,
    merge_werf_images,
    read_werf_cleanup,
    read_werf_images,
)
from tasks.core.yamlfile import read_yaml

DEFAULT_CONCURRENCY = 64  # requests in flight to the registry (registry.concurrency)


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError("a duration is a string such as 168h or 30m")
    return parse_duration(value)


Duration = Annotated[
    timedelta,
    BeforeValidator(_duration),
    PlainSerializer(format_duration, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^(0|(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+)$",
            "description": "a Go duration such as 168h, 30m or 1h30m",
        }
    ),
]


def name_pattern(pattern: str) -> re.Pattern[str]:
    """Compile a werf name pattern: `/regex/` or a literal; either matches the whole name."""
    if len(pattern) >= 2 and pattern.startswith("/") and pattern.endswith("/"):
        return re.compile(pattern[1:-1])
    return re.compile(re.escape(pattern))


def _check_pattern(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string: a literal name or a /regex/")
    try:
        name_pattern(value)
    except re.error as exc:
        raise ValueError(f"invalid regular expression: {exc}") from exc
    return value


class _Model(BaseModel):
    # strict: `keepTags: [123]` or a list where a string belongs is an error naming the
    # field, not a silent coercion; no inf/nan numbers.
    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, frozen=True, strict=True, allow_inf_nan=False
    )


def checked_url(value: str, what: str) -> str:
    """`value` as an http(s) URL with a host and a valid port and no credentials in it;
    raise ValueError saying what is wrong."""
    try:
        url = normalise_url(value)
        parts = urlsplit(url)
        port = parts.port  # raises for a port out of range or not a number
        host = parts.hostname
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a valid URL: {exc}") from None
    if not host:
        raise ValueError(f"{value!r} has no host")
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            f"credentials do not belong in {what}: use a docker config.json, the environment "
            "or a Prefect Secret block (see docs/getting-started.md)"
        )
    del port
    return url


class RegistryConfig(_Model):
    url: str
    repositories: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    exclude: list[str] = Field(default_factory=list)
    concurrency: int = Field(default=DEFAULT_CONCURRENCY, ge=1, le=256)
    # None = no rate limit; at least one request per 10 s (a tiny rate would never finish)
    requests_per_second: float | None = Field(default=None, ge=0.1, le=1_000_000)
    processes: int = Field(default=1, ge=1, le=64)  # scan processes (big registries: cores)
    cache: bool | str = True  # manifest/config cache: True = $REGSWEEP_HOME/cache, or a path
    credentials_secret: str | None = None  # Prefect Secret block: {username, password}
    aliases: list[str] = Field(default_factory=list)  # other hosts naming this registry
    kind: str | None = None  # a key of tasks.core.registry_kinds.REGISTRY_KINDS; None: host
    api: str | None = None  # the vendor API's URL (github: https://api.github.com)

    @property
    def host(self) -> str:
        """`host[:port]` of `url`, as image references name the registry."""
        return registry_host(self.url)

    @property
    def names(self) -> frozenset[str]:
        """Every canonical name cluster images may give this registry: its host, aliases."""
        return registry_names(self.url, self.aliases)

    @field_validator("aliases")
    @classmethod
    def _aliases(cls, value: list[str]) -> list[str]:
        for alias in value:
            if not alias.strip() or "/" in alias or any(c.isspace() for c in alias.strip()):
                raise ValueError(f"{alias!r} is not a host[:port] (no scheme, no path)")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return checked_url(value, "registry.url")

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str | None) -> str | None:
        if value is not None and value not in REGISTRY_KINDS:
            known = ", ".join(sorted(REGISTRY_KINDS))
            raise ValueError(f"{value!r} is not a registry kind regsweep knows ({known})")
        return value

    @field_validator("api")
    @classmethod
    def _api(cls, value: str | None) -> str | None:
        return None if value is None else checked_url(value, "registry.api")


class GitConfig(_Model):
    path: str | None = None
    url: str | None = None
    remote: str = "origin"
    cache: str | None = None  # where git.url is mirrored; default $REGSWEEP_HOME/git
    password_secret: str | None = None  # Prefect Secret block holding the git.url password

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and "://" in value and value.split("://", 1)[0] in ("http", "https"):
            return checked_url(value, "git.url")
        return value

    @model_validator(mode="after")
    def _source(self) -> GitConfig:
        if (self.path is None) == (self.url is None):
            raise ValueError("set exactly one of git.path and git.url")
        if self.url is None and (self.cache or self.password_secret):
            raise ValueError("git.cache and git.passwordSecret apply only to git.url")
        return self


class KubernetesConfig(_Model):
    enabled: bool = True
    kubeconfig: str | None = None
    contexts: list[str] = Field(default_factory=list)
    namespaces: list[str] = Field(default_factory=list)
    helm_revisions: int = Field(default=5, ge=0)
    finished_jobs: Literal["keep", "ignore"] = "keep"


class LinkConfig(_Model):
    # auto: a repository werf wrote (meta records, stages labelled `werf`) is read the werf
    # way (tasks.policy.werf_layout); werf: every repository; oci: none
    source: Literal["auto", "oci", "werf"] = "auto"
    # the werf images werf.yaml defines (read from --werf-config): the meta records of any
    # other image are cleaned as werf cleans them; None: every werf image is managed
    werf_images: list[str] | None = None
    label: str = "org.opencontainers.image.revision"
    tag_pattern: str | None = None

    @field_validator("tag_pattern")
    @classmethod
    def _tag_pattern(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regular expression: {exc}") from exc
        if "commit" not in compiled.groupindex:
            raise ValueError("needs a (?P<commit>...) group")
        return value


class Limit(_Model):
    last: int | None = Field(default=None, ge=0)
    in_: Duration | None = Field(default=None, alias="in")
    operator: Literal["And", "Or"] = "And"


class ImagesPerReference(_Model):
    last: int | None = Field(default=None, ge=-1)
    in_: Duration | None = Field(default=None, alias="in")
    operator: Literal["And", "Or"] = "And"

    def effective_last(self) -> int | None:
        """`last`, defaulting to 1 when neither `last` nor `in` is given; None = unlimited."""
        if self.last is None and self.in_ is None:
            return 1
        if self.last == -1:
            return None
        return self.last


class References(_Model):
    branch: Annotated[str, BeforeValidator(_check_pattern)] | None = None
    tag: Annotated[str, BeforeValidator(_check_pattern)] | None = None
    limit: Limit | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> References:
        if (self.branch is None) == (self.tag is None):
            raise ValueError("set exactly one of branch and tag")
        return self


class KeepPolicy(_Model):
    references: References
    images_per_reference: ImagesPerReference = Field(default_factory=ImagesPerReference)


def _check_glob(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("must be a repository name or glob, e.g. mirror/*")
    return value


class RegistryPolicy(_Model):
    """A registry-side keep rule for the repositories its globs match, in zot's vocabulary:
    of the images with a tag matching `tags`, keep the `mostRecentlyPushedCount` newest,
    those pushed within `pushedWithin`, the `mostRecentlyPulledCount` most recently pulled
    and those pulled within `pulledWithin` (all OR'd). Push time is the vendor's where its
    API reports one (Harbor, ECR, GitHub, ACR, Docker Hub, GitLab), else the image's
    `created`; pulls are what `regsweep pulls serve` recorded."""

    repositories: list[Annotated[str, BeforeValidator(_check_glob)]] = Field(min_length=1)
    tags: list[Annotated[str, BeforeValidator(_check_pattern)]] = Field(
        default_factory=lambda: ["/.*/"]
    )
    most_recently_pushed_count: int | None = Field(default=None, ge=0)
    pushed_within: Duration | None = None
    most_recently_pulled_count: int | None = Field(default=None, ge=0)
    pulled_within: Duration | None = None

    @model_validator(mode="after")
    def _rules(self) -> RegistryPolicy:
        rules = (
            self.most_recently_pushed_count,
            self.pushed_within,
            self.most_recently_pulled_count,
            self.pulled_within,
        )
        if all(rule is None for rule in rules):
            raise ValueError(
                "give at least one of mostRecentlyPushedCount, pushedWithin, "
                "mostRecentlyPulledCount, pulledWithin"
            )
        return self

    @property
    def uses_pulls(self) -> bool:
        return self.most_recently_pulled_count is not None or self.pulled_within is not None

    @property
    def uses_pushes(self) -> bool:
        return bool(self.most_recently_pushed_count) or self.pushed_within is not None


def _check_keep_list(value: Any) -> Any:
    if isinstance(value, list):
        raise ValueError(
            "a path to a file of image references (one a line, # comments), not a list: "
            "write the references to a file and name it here"
        )
    return value


class CleanupConfig(_Model):
    keep_policies: list[KeepPolicy] = Field(default_factory=list)
    keep_images_built_within_last_n_hours: float = Field(default=2, ge=0, le=MAX_HOURS)
    disable_kubernetes_based_policy: bool = False
    disable_git_history_based_policy: bool = False
    disable_built_within_last_n_hours_policy: bool = False
    keep_tags: list[Annotated[str, BeforeValidator(_check_pattern)]] = Field(default_factory=list)
    keep_list: Annotated[str | None, BeforeValidator(_check_keep_list)] = None
    unlinked: Literal["keep", "delete"] = "keep"
    registry_policies: list[RegistryPolicy] = Field(default_factory=list)
    keep_images_pulled_within: Duration | None = None
    # A tag no rule keeps, on a digest kept for its other tags: `api` deletes the tag where
    # the registry can (probed), `overwrite` points it at a unique placeholder manifest and
    # deletes that (Distribution 2.8; regclient's method), `off` keeps such tags.
    untag: Literal["api", "overwrite", "off"] = "api"

    def registry_policy_of(self, repository: str) -> int | None:
        """Index of the first registry policy whose globs match `repository` (it alone
        decides there, as in zot), else None."""
        for index, policy in enumerate(self.registry_policies):
            if any(fnmatchcase(repository, glob) for glob in policy.repositories):
                return index
        return None

    def wants_push_times(self, repository: str) -> bool:
        """True when the registry policy deciding `repository` has a push rule: the scan
        then reads the vendor's push times there."""
        index = self.registry_policy_of(repository)
        return index is not None and self.registry_policies[index].uses_pushes


def _check_database(value: Any) -> str:
    if not isinstance(value, str) or not value.startswith(
        ("sqlite:///", "postgresql://", "postgres://")
    ):
        raise ValueError("must be sqlite:///PATH or postgresql://[user@]host[:port]/database")
    userinfo, at, _ = urlsplit(value).netloc.rpartition("@")
    if value.startswith("postgres") and at and ":" in userinfo:
        raise ValueError("a password does not go in the configuration: use PGPASSWORD or ~/.pgpass")
    return value


class PullsConfig(_Model):
    """Where `regsweep pulls serve` records pulls, and whose pulls do not count. The bearer
    token the registry sends comes from REGSWEEP_PULLS_TOKEN or the Prefect Secret block
    `tokenSecret` names."""

    database: Annotated[str, BeforeValidator(_check_database)] = "sqlite:///~/.regsweep/pulls.db"
    ignore_user_agents: list[str] = Field(default_factory=list)
    token_secret: str | None = None
    # The registry's notifications reach `pulls serve`, which records pushes too: the delete
    # step reads them right before each DELETE and heals a tag pushed onto a deleted
    # manifest (tasks.delete.pushes).
    watch_pushes: bool = False


class SafetyConfig(_Model):
    max_delete_fraction: float = Field(default=0.8, gt=0, le=1)
    # An image `regsweep restore` put back is kept this long (keep reason `restored`).
    keep_restored_for: Duration = timedelta(days=7)


class MetricsConfig(_Model):
    """Where each run's metrics go, for Prometheus: a Pushgateway (`pushgateway`: its URL;
    pushed with `pushadd`, grouped by job and registry, so a failed run leaves the last
    success in place; basic auth from REGSWEEP_PUSHGATEWAY_USERNAME and
    REGSWEEP_PUSHGATEWAY_PASSWORD) and/or a file for the node exporter's textfile
    collector (`textfile`: a path ending in .prom). Neither by default."""

    pushgateway: str | None = None
    textfile: str | None = None
    job: str = Field(default="regsweep", pattern=r"^[a-zA-Z_][a-zA-Z0-9_-]*$")

    @field_validator("pushgateway")
    @classmethod
    def _pushgateway(cls, value: str | None) -> str | None:
        return None if value is None else checked_url(value, "metrics.pushgateway")

    @field_validator("textfile")
    @classmethod
    def _textfile(cls, value: str | None) -> str | None:
        if value is not None and not value.endswith(".prom"):
            raise ValueError(
                f"{value!r} must end in .prom (the textfile collector reads only those)"
            )
        return value


class Config(_Model):
    registry: RegistryConfig
    git: GitConfig | None = None
    kubernetes: KubernetesConfig = Field(default_factory=KubernetesConfig)
    link: LinkConfig = Field(default_factory=LinkConfig)
    cleanup: CleanupConfig = Field(default_factory=CleanupConfig)
    pulls: PullsConfig = Field(default_factory=PullsConfig)
    safety: SafetyConfig = Field(default_factory=SafetyConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)

    @model_validator(mode="after")
    def _git_needed(self) -> Config:
        if self.git is None and self.uses_git:
            raise ValueError("git is required unless cleanup.disableGitHistoryBasedPolicy is true")
        return self

    @property
    def uses_git(self) -> bool:
        """True when the git-history policy runs (and so the Git stage)."""
        return not self.cleanup.disable_git_history_based_policy

    @property
    def uses_kubernetes(self) -> bool:
        """True when the Kubernetes-based policy runs (and so the cluster stage)."""
        return self.kubernetes.enabled and not self.cleanup.disable_kubernetes_based_policy

    @property
    def uses_pulls(self) -> bool:
        """True when a rule reads pull records (and so the pulls stage)."""
        return self.cleanup.keep_images_pulled_within is not None or any(
            p.uses_pulls for p in self.cleanup.registry_policies
        )

    def effective_policies(self) -> list[KeepPolicy]:
        """The configured keepPolicies, or werf's defaults when there are none."""
        return list(self.cleanup.keep_policies) or default_policies()


DEFAULT_POLICY_NAMES = (
    "werf default: the 10 newest tags",
    "werf default: branches of the last 7 days (at most 10), their 2 newest images "
    "of the last 7 days",
    "werf default: main, master, staging, production: their 10 newest images (werf's code; "
    "its docs say 2)",
)
"""What each of `default_policies()` keeps, in words (`explain` says which one kept it)."""


def default_policies() -> list[KeepPolicy]:
    """werf's default keepPolicies, as werf 2's code has them (werf/werf
    `pkg/cleaning/git_history_based_cleanup/reference_to_scan.go`): PR #6668 set the main
    branches to 2 in February 2025, #6708 set 10 again in March 2025; werf's docs still say
    2. regsweep follows the code, which is what werf users get."""
    return [
        KeepPolicy.model_validate({"references": {"tag": "/.*/", "limit": {"last": 10}}}),
        KeepPolicy.model_validate(
            {
                "references": {
                    "branch": "/.*/",
                    "limit": {"last": 10, "in": "168h", "operator": "And"},
                },
                "imagesPerReference": {"last": 2, "in": "168h", "operator": "And"},
            }
        ),
        KeepPolicy.model_validate(
            {
                "references": {"branch": "/^(main|master|staging|production)$/"},
                "imagesPerReference": {"last": 10},
            }
        ),
    ]


def field_path(loc: tuple[int | str, ...]) -> str:
    """Render a pydantic error location as `a.b[0].c`."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part:
            path += ("." if path else "") + part
    return path


def parse_config(data: Any, source: str = "config") -> Config:
    """Validate an already-parsed YAML document; raise `ConfigError` naming the field."""
    if not isinstance(data, dict):
        raise ConfigError("", f"{source}: the top level must be a mapping")
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        # a misspelt key first: "registry: Field required" would hide "regsitry"
        first = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")[0]
        loc = tuple(p for p in first["loc"] if not str(p).startswith("function-"))
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = "unknown key" + _did_you_mean(loc)
        count = exc.error_count()
        more = f" (and {count - 1} more problem{'s' if count > 2 else ''})" if count > 1 else ""
        raise ConfigError(field_path(loc), message + more) from None


def _did_you_mean(loc: tuple[Any, ...]) -> str:
    """`; did you mean X?` for an unknown key at `loc` close to a key the model knows."""
    model: Any = Config
    for part in loc[:-1]:
        if isinstance(part, int) or model is None:
            continue
        field = next((f for n, f in model.model_fields.items() if part in (n, f.alias)), None)
        model = _model_in(field.annotation) if field is not None else None
    if model is None:
        return ""
    known = [f.alias or n for n, f in model.model_fields.items()]
    close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def _model_in(annotation: Any) -> Any:
    """The pydantic model an annotation holds (through Optional, list, dict values)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in get_args(annotation):
        found = _model_in(argument)
        if found is not None:
            return found
    return None


def registry_only(url: str, base: Config | None = None, field: str = "--registry") -> Config:
    """The configuration of a job on the registry at `url` alone (`regsweep restore`): the
    registry settings of `base` (credentials, kind, API, limits, cache) at that URL, else
    the defaults; no Git, no cluster. The URL is checked and normalised as `registry.url`
    is; a bad one raises `ConfigError` naming `field`."""
    registry = base.registry.model_dump(by_alias=True, exclude_none=True) if base else {}
    document = {
        "registry": {**registry, "url": url},
        "kubernetes": {"enabled": False},
        "cleanup": {"disableGitHistoryBasedPolicy": True},
    }
    try:
        return parse_config(document, field)
    except ConfigError as exc:
        raise ConfigError(field, exc.message) from None


def load_config(path: str | Path, werf_config: str | Path | None = None) -> Config:
    """Read and validate the YAML configuration at `path`; raise `ConfigError`.

    With `werf_config`, the `cleanup` section of that werf.yaml joins the configuration.
    """
    file = Path(path)
    data = read_yaml(file)
    if werf_config is None:
        return parse_config(data, str(file))
    werf_cleanup = read_werf_cleanup(werf_config)
    data = merge_werf_images(data, read_werf_images(werf_config))
    try:
        return parse_config(merge_werf_cleanup(data, werf_cleanup, str(werf_config)), str(file))
    except ConfigError as exc:
        if any(exc.field.startswith(f"cleanup.{key}") for key in werf_cleanup):
            raise ConfigError(exc.field, f"{exc.message} (in {werf_config})") from None
        raise


def config_schema() -> dict[str, Any]:
    """The JSON Schema of `regsweep.yaml`, from the configuration model: what editors
    validate and complete against (`regsweep config schema`)."""
    schema = Config.model_json_schema(by_alias=True, mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "regsweep configuration (regsweep.yaml)",
        **{k: v for k, v in schema.items() if k != "title"},
    }
