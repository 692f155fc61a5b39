"""Fetch an adapter that a visitor of the app names, checking it before anything is downloaded.

A visitor may name a Hub repo only (`USER/NAME`), never a path on the server: a folder is for the
operator (QA_ADAPTER). Before downloading, the repo must hold `adapter_config.json` and adapter
weights within QA_MAX_ADAPTER_MB, and only those adapter files are fetched. The operator's token is
sent only for repos matching QA_ADAPTER_REPOS (default: the token owner's namespace); any other repo
is fetched without it, so a visitor can load public adapters only and never uses the operator's access.

    snapshot = fetch_visitor_adapter("me/qa-run", "40", settings)   # step, commit or branch
"""

from __future__ import annotations

import dataclasses
import re
from fnmatch import fnmatchcase
from functools import lru_cache
from pathlib import Path

from huggingface_hub import snapshot_download

from qa_core.config import Settings
from qa_core.errors import AdapterRefused
from qa_core.hub.checkpoints import CHECKPOINT_FILE, Checkpoint, logged_losses, pushed_checkpoints, resolve_revision
from qa_core.hub.client import api, call, require_reachable
from qa_core.hub.snapshots import ADAPTER_CONFIG, ADAPTER_WEIGHTS, Snapshot

REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
ADAPTER_FILES = [ADAPTER_CONFIG, ADAPTER_WEIGHTS, CHECKPOINT_FILE, "README.md"]


@lru_cache(maxsize=8)
def _token_owner(endpoint: str, token: str) -> str | None:
    try:
        return api(Settings(hf_token=token, hf_endpoint=endpoint)).whoami().get("name")
    except Exception:  # an unusable token trusts no namespace
        return None


def token_allowed(repo_id: str, settings: Settings) -> bool:
    """Whether the operator's token may be sent for `repo_id` (QA_ADAPTER_REPOS, default OWNER/*)."""
    if not settings.hf_token:
        return False
    patterns = settings.adapter_repos
    if patterns is None:
        owner = _token_owner(settings.hf_endpoint, settings.hf_token)
        patterns = (f"{owner}/*",) if owner else ()
    return any(fnmatchcase(repo_id, pattern) for pattern in patterns)


def visitor_hub_settings(repo: str, settings: Settings) -> Settings:
    """The settings to reach Hub repo `repo` with for a visitor: the operator's token only for the
    operator's repos (`token_allowed`), no token otherwise.

    Raises:
        AdapterRefused: `repo` is not a `USER/NAME` Hub repo name (a path on the server, say).
        HubError: the Hub cannot be reached.
    """
    if not REPO_ID.match(repo) or ".." in repo:
        raise AdapterRefused(
            "name an adapter on the Hub as USER/NAME; paths on the server are not accepted "
            "(the operator sets QA_ADAPTER for a local adapter)"
        )
    require_reachable(repo, settings)  # a visitor waits on the page: one line now, not a minute of retries
    return settings if token_allowed(repo, settings) else dataclasses.replace(settings, hf_token=None)


def list_visitor_checkpoints(repo: str, settings: Settings) -> tuple[list[Checkpoint], list[dict]]:
    """The checkpoints pushed to Hub repo `repo`, newest first, seen as a visitor may see them, and
    the losses the run logged up to the newest (see `logged_losses`).

    Raises:
        AdapterRefused: not a `USER/NAME` repo name.
        HubError: no such repo (or it is private to another token), or no checkpoint commits in it.
    """
    repo = repo.strip()
    hub = visitor_hub_settings(repo, settings)
    found = pushed_checkpoints(repo, hub)
    return found, logged_losses(repo, found[0].commit, hub)


def fetch_visitor_adapter(repo: str, revision: str, settings: Settings) -> Snapshot:
    """Check and download the adapter files of Hub repo `repo` at `revision` (step, commit or branch;
    empty: main).

    Returns:
        The snapshot (its `commit` is the exact commit fetched).

    Raises:
        AdapterRefused: not a `USER/NAME` repo name, no `adapter_config.json` or adapter weights, or
            weights over QA_MAX_ADAPTER_MB; nothing is downloaded then.
        HubError: the repo, revision or step does not exist (or is private to another token).
    """
    repo = repo.strip()
    hub = visitor_hub_settings(repo, settings)
    commit = resolve_revision(repo, revision.strip() or "main", hub)
    found = {
        entry.path: entry
        for entry in call(lambda: api(hub).get_paths_info(repo, ADAPTER_FILES, revision=commit), hub, repo, commit)
    }
    for required in ADAPTER_FILES[:2]:
        if required not in found:
            raise AdapterRefused(f"{repo}@{commit[:12]} is not a PEFT adapter (no {required}); nothing was downloaded")
    size = sum(entry.size or 0 for entry in found.values())
    if size > settings.max_adapter_mb * 1e6:
        raise AdapterRefused(
            f"{repo}@{commit[:12]}: the adapter is {size / 1e6:,.0f} MB, over this server's limit of "
            f"{settings.max_adapter_mb:g} MB (QA_MAX_ADAPTER_MB); nothing was downloaded"
        )
    path = call(
        lambda: snapshot_download(
            repo, revision=commit, allow_patterns=ADAPTER_FILES, endpoint=hub.hf_endpoint, token=hub.hub_token
        ),
        hub,
        repo,
        commit,
    )
    return Snapshot(repo_id=repo, commit=commit, path=Path(path))
