"""Errors raised by the Git stage; pygit2 errors are translated where pygit2 is called::

GitError                 anything the Git stage cannot do (fails the run closed)
├── RepositoryNotFound   `git.path` is not a Git repository
├── ShallowClone         history is cut short, so reachability would be wrong
├── NoBranches           no branch under the configured remote: a typo would delete all
└── FetchFailed          `git.url` could not be fetched (network, credentials): no stale plan
"""

from __future__ import annotations


class GitError(Exception):
    """Base class of every Git stage error."""


class RepositoryNotFound(GitError):
    """The configured path is not a Git repository."""


class ShallowClone(GitError):
    """The repository is shallow; retention needs the full history."""


class NoBranches(GitError):
    """No branches were found where the configuration says they are."""


class FetchFailed(GitError):
    """The `git.url` mirror could not be created or updated."""
