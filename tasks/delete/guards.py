"""Run-wide sanity guards: signs that the inputs describe some other world than the registry's.

Each returns a refusal message (every deletion is then refused, exit 4, `--force` overrides)
or an empty string:

- `cluster_refusal`: the cluster stage is on, yet no image in the cluster names this registry
  or one of its aliases. Either the kubeconfig points at the wrong (or an empty) cluster, or
  the cluster pulls through a name we do not know (add it to `registry.aliases`): either way
  the Kubernetes policy protected nothing.
- `git_refusal`: more than half of the images linked to commits (at least
  `MIN_LINKED_FOR_GIT_GUARD` of them) name only commits the Git repository does not know:
  `git.path` is most likely another repository, and its policies would free everything.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import pandas as pd

from tasks.policy.plan import Plan

UNKNOWN_COMMITS_LIMIT = 0.5
MIN_LINKED_FOR_GIT_GUARD = 4


def unmatched_hosts(cluster: pd.DataFrame, names: Iterable[str]) -> dict[str, int]:
    """Cluster image references per registry host that is not this registry, busiest first."""
    own = set(names)
    counts = Counter(h for h in cluster["registry"].tolist() if h not in own)
    return dict(counts.most_common())


def cluster_refusal(cluster: pd.DataFrame, names: Iterable[str]) -> str:
    own = sorted(set(names))
    if cluster["registry"].isin(own).any():
        return ""
    others = unmatched_hosts(cluster, own)
    seen = ", ".join(f"{host} ({n})" for host, n in list(others.items())[:5]) or "no images"
    return (
        f"no image in the cluster names this registry ({', '.join(own)}); the cluster has "
        f"{seen}. Wrong kubeconfig, or a name missing from registry.aliases? "
        "Rerun with --force if the cluster really uses nothing here"
    )


def git_refusal(plan: Plan) -> str:
    table = plan.table.drop_duplicates(["repository", "digest"])
    commits = {
        (r, d): set(c)
        for r, d, c in zip(table["repository"], table["digest"], table["commits"], strict=True)
    }
    linked = {key for key, shas in commits.items() if shas} | {
        key for key, values in plan.unknown_commits.items() if values
    }
    unknown_only = {  # every link of the image names a commit Git does not know
        key
        for key, values in plan.unknown_commits.items()
        if values and not commits.get(key, set()) - {v.strip().lower() for v in values}
    }
    total = len(linked)
    if total < MIN_LINKED_FOR_GIT_GUARD or len(unknown_only) <= UNKNOWN_COMMITS_LIMIT * total:
        return ""
    return (
        f"{len(unknown_only)} of {total} images linked to commits name only commits the Git "
        "repository does not know: is git.path (or git.url) the repository these images are "
        "built from? Rerun with --force if it is"
    )
