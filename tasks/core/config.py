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
    # Each field's docstring is its meaning: in the JSON Schema editors show, and in the
    # manual's configuration reference (docs/reference/configuration.md).
    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        frozen=True,
        strict=True,
        allow_inf_nan=False,
        use_attribute_docstrings=True,
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
    """The registry's URL, as its OCI API is served (`https://registry.example.com`)."""
    repositories: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    """The repositories to clean: names or globs (`team/*`); `*` is every one the registry
    lists (on GitLab and Docker Hub a glob's first segment is the group or namespace)."""
    exclude: list[str] = Field(default_factory=list)
    """Repositories (names or globs) never touched, even where `repositories` matches."""
    concurrency: int = Field(default=DEFAULT_CONCURRENCY, ge=1, le=256)
    """Requests in flight at once against the registry."""
    requests_per_second: float | None = Field(default=None, ge=0.1, le=1_000_000)
    """A ceiling on requests a second (null: none; at least 0.1, one request per 10 s)."""
    processes: int = Field(default=1, ge=1, le=64)
    """Scan processes: raise it towards the machine's cores for very large registries."""
    cache: bool | str = True
    """The manifest and config cache kept between runs: true ($REGSWEEP_HOME/cache), false
    (none) or a directory."""
    credentials_secret: str | None = None
    """A Prefect Secret block holding `{username, password}` for the registry (else docker's
    config.json or the environment)."""
    aliases: list[str] = Field(default_factory=list)
    """Other `host[:port]` names of this registry in cluster image references (a mirror's,
    an ingress's)."""
    kind: str | None = None
    """The registry's kind: `distribution`, `github`, `gitlab`, `dockerhub`, `ecr`, `acr`,
    `harbor` (null: detected from the host)."""
    api: str | None = None
    """The vendor API's URL where the kind has one (GitHub Enterprise's `/api/v3`, a
    self-managed GitLab's `/api/v4`, Harbor's); null: the vendor's default."""

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
    """A local clone to read branches, tags and commits from (exactly one of `path` and
    `url`)."""
    url: str | None = None
    """A remote repository (https or ssh) to mirror under `cache` and read."""
    remote: str = "origin"
    """The remote whose branches are the live ones in a clone (`refs/remotes/<remote>/`; a
    bare mirror's own branches otherwise)."""
    cache: str | None = None
    """Where `url` is mirrored (null: $REGSWEEP_HOME/git)."""
    password_secret: str | None = None
    """A Prefect Secret block holding the password or token for an https `url`."""

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
    """Read the images the clusters run and their recent Helm releases (false: no cluster
    stage, nothing kept for being in use)."""
    kubeconfig: str | None = None
    """The kubeconfig file (null: $KUBECONFIG, else in-cluster when run in a Pod, else
    ~/.kube/config)."""
    contexts: list[str] = Field(default_factory=list)
    """The kubeconfig contexts to read: every cluster you deploy to (empty: every context in
    the kubeconfig)."""
    namespaces: list[str] = Field(default_factory=list)
    """The namespaces to read (empty: all)."""
    helm_revisions: int = Field(default=5, ge=0)
    """Keep the images of this many latest revisions of each Helm release (rollback
    targets)."""
    finished_jobs: Literal["keep", "ignore"] = "keep"
    """`keep`: a finished Job's and its Pods' images count as in use; `ignore`: they do not
    (a CronJob still counts for its template)."""


class LinkConfig(_Model):
    source: Literal["auto", "oci", "werf"] = "auto"
    """How an image is linked to its Git commit: `auto` reads a repository werf wrote (meta
    records, stages labelled `werf`) the werf way and any other by `label`/`tagPattern`;
    `werf` reads every repository the werf way; `oci` none."""
    werf_images: list[str] | None = None
    """The werf images werf.yaml defines (read from `--werf-config`): the meta records of any
    other image are cleaned as werf cleans them (null: every werf image is managed)."""
    label: str = "org.opencontainers.image.revision"
    """The image label that names the commit an image was built from."""
    tag_pattern: str | None = None
    """A regular expression with a `(?P<commit>...)` group that reads the commit from a tag,
    for images without the label."""

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
    """Of the matching references, only the `last` most recently committed count."""
    in_: Duration | None = Field(default=None, alias="in")
    """Only references committed to within this long count."""
    operator: Literal["And", "Or"] = "And"
    """How `last` and `in` combine: `And` (both) or `Or` (either)."""


class ImagesPerReference(_Model):
    last: int | None = Field(default=None, ge=-1)
    """Images kept per reference, from its newest commit back (-1: every one; 1 when neither
    `last` nor `in` is given)."""
    in_: Duration | None = Field(default=None, alias="in")
    """Keep a reference's images of commits made within this long."""
    operator: Literal["And", "Or"] = "And"
    """How `last` and `in` combine: `And` (both) or `Or` (either)."""

    def effective_last(self) -> int | None:
        """`last`, defaulting to 1 when neither `last` nor `in` is given; None = unlimited."""
        if self.last is None and self.in_ is None:
            return 1
        if self.last == -1:
            return None
        return self.last


class References(_Model):
    branch: Annotated[str, BeforeValidator(_check_pattern)] | None = None
    """The branches the policy covers: a name or a `/regex/` (exactly one of `branch` and
    `tag`)."""
    tag: Annotated[str, BeforeValidator(_check_pattern)] | None = None
    """The Git tags the policy covers: a name or a `/regex/`."""
    limit: Limit | None = None
    """Which of the matching references count (null: all)."""

    @model_validator(mode="after")
    def _one_kind(self) -> References:
        if (self.branch is None) == (self.tag is None):
            raise ValueError("set exactly one of branch and tag")
        return self


class KeepPolicy(_Model):
    references: References
    """The Git branches or tags whose images the policy keeps."""
    images_per_reference: ImagesPerReference = Field(default_factory=ImagesPerReference)
    """How many images of each reference it keeps."""


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
    """The repositories (names or globs) it decides; the first policy to match a repository
    alone decides there."""
    tags: list[Annotated[str, BeforeValidator(_check_pattern)]] = Field(
        default_factory=lambda: ["/.*/"]
    )
    """The tags it looks at: names or `/regex/` (default: every tag)."""
    most_recently_pushed_count: int | None = Field(default=None, ge=0)
    """Keep this many most recently pushed images."""
    pushed_within: Duration | None = None
    """Keep the images pushed within this long."""
    most_recently_pulled_count: int | None = Field(default=None, ge=0)
    """Keep this many most recently pulled images (pulls `regsweep pulls serve` recorded)."""
    pulled_within: Duration | None = None
    """Keep the images pulled within this long."""

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
    """werf's keepPolicies: the images of the Git branches and tags they name are kept."""
    keep_images_built_within_last_n_hours: float = Field(default=2, ge=0, le=MAX_HOURS)
    """Keep every image built within this many hours (builds still in flight)."""
    disable_kubernetes_based_policy: bool = False
    """Keep nothing for being in use in Kubernetes or a recent Helm release."""
    disable_git_history_based_policy: bool = False
    """Apply no keepPolicies (and then `git` may be left out)."""
    disable_built_within_last_n_hours_policy: bool = False
    """Keep nothing for being a recent build."""
    keep_tags: list[Annotated[str, BeforeValidator(_check_pattern)]] = Field(default_factory=list)
    """Tags always kept: names or `/regex/`."""
    keep_list: Annotated[str | None, BeforeValidator(_check_keep_list)] = None
    """A file of image references always kept, one a line (`#` comments)."""
    unlinked: Literal["keep", "delete"] = "keep"
    """An image no commit can be found for: `keep` it (safe) or `delete` it."""
    registry_policies: list[RegistryPolicy] = Field(default_factory=list)
    """Keep rules by push and pull, zot's; a repository one matches is decided by it alone."""
    keep_images_pulled_within: Duration | None = None
    """Keep every image pulled within this long (needs pull records)."""
    untag: Literal["api", "overwrite", "off"] = "api"
    """A tag no rule keeps, on a digest kept for its other tags: `api` deletes the tag where
    the registry can (probed), `overwrite` points it at a unique placeholder manifest and
    deletes that (Distribution 2.8; regclient's method), `off` keeps such tags."""

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
    """Where pulls (and pushes) are recorded: `sqlite:///PATH` or
    `postgresql://[user@]host[:port]/database` (the password from PGPASSWORD or ~/.pgpass)."""
    ignore_user_agents: list[str] = Field(default_factory=list)
    """User agents (globs) whose pulls do not count, e.g. a scanner's; regsweep's own never
    do."""
    token_secret: str | None = None
    """A Prefect Secret block holding the bearer token the registry's notifications carry
    (else REGSWEEP_PULLS_TOKEN)."""
    watch_pushes: bool = False
    """The registry's notifications reach `pulls serve`, which records pushes too: the
    delete step reads them right before each DELETE and heals a tag pushed onto a deleted
    manifest."""


class SafetyConfig(_Model):
    max_delete_fraction: float = Field(default=0.8, gt=0, le=1)
    """A repository whose plan deletes more than this fraction of its images is refused
    (`--force` overrides)."""
    keep_restored_for: Duration = Field(
        default=timedelta(days=7), json_schema_extra={"default": "168h"}
    )
    """An image `regsweep restore` put back is kept this long (keep reason `restored`)."""


class MetricsConfig(_Model):
    """Where each run's metrics go, for Prometheus: a Pushgateway (`pushgateway`: its URL;
    pushed with `pushadd`, grouped by job and registry, so a failed run leaves the last
    success in place; basic auth from REGSWEEP_PUSHGATEWAY_USERNAME and
    REGSWEEP_PUSHGATEWAY_PASSWORD) and/or a file for the node exporter's textfile
    collector (`textfile`: a path ending in .prom). Neither by default."""

    pushgateway: str | None = None
    """A Prometheus Pushgateway's URL to push each run's metrics to."""
    textfile: str | None = None
    """A `.prom` file to write each run's metrics to, for the node exporter's textfile
    collector."""
    job: str = Field(default="regsweep", pattern=r"^[a-zA-Z_][a-zA-Z0-9_-]*$")
    """The `job` label the metrics are pushed under."""

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
    """The registry to clean."""
    git: GitConfig | None = None
    """The Git repository the images are built from; required unless
    `cleanup.disableGitHistoryBasedPolicy` is true."""
    kubernetes: KubernetesConfig = Field(default_factory=KubernetesConfig)
    """The clusters whose running images are kept."""
    link: LinkConfig = Field(default_factory=LinkConfig)
    """How an image is linked to the commit it was built from."""
    cleanup: CleanupConfig = Field(default_factory=CleanupConfig)
    """What is kept: policies and rules."""
    pulls: PullsConfig = Field(default_factory=PullsConfig)
    """The pull records `regsweep pulls serve` keeps."""
    safety: SafetyConfig = Field(default_factory=SafetyConfig)
    """Guards on what a run may delete."""
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    """Where each run's metrics go."""

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
    validate and complete against (`regsweep config schema`). Each key's meaning is its
    field's docstring, on one line; the model's one rule across sections (`git` unless the
    Git policy is off: `Config._git_needed`) is the schema's `if`/`then`."""
    schema = _one_line_descriptions(Config.model_json_schema(by_alias=True, mode="validation"))
    git_policy_off = {
        "properties": {
            "cleanup": {
                "properties": {"disableGitHistoryBasedPolicy": {"const": True}},
                "required": ["disableGitHistoryBasedPolicy"],
            }
        },
        "required": ["cleanup"],
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "regsweep configuration (regsweep.yaml)",
        **{k: v for k, v in schema.items() if k != "title"},
        "if": {"not": git_policy_off},
        "then": {"required": ["git"], "properties": {"git": {"type": "object"}}},
    }


def _one_line_descriptions(node: Any) -> Any:
    """`node` with every `description` (a docstring, wrapped) on one line."""
    if isinstance(node, dict):
        return {
            key: " ".join(value.split())
            if key == "description" and isinstance(value, str)
            else _one_line_descriptions(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_one_line_descriptions(value) for value in node]
    return node
