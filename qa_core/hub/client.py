"""Talk to the Hub: an `HfApi` bound to the configured endpoint and token, retries, clear errors,
and pushes of a folder as exactly one commit.

Transient failures (connection errors, timeouts, HTTP 429 and 5xx) are retried with exponential
backoff; everything else fails at once. Many client calls (listings, commits, uploads) already
retry with their own backoff, for about 20 s; a failure that took that long is not retried again,
or the waits would multiply. Every failure becomes one `HubError` line that names the
repo and says what to do, and never contains the token.

Commands a person waits on (listing checkpoints, pulling, pushing by hand, the app's Model tab)
first check that the endpoint answers at all (`require_reachable`: one TCP connection, 3 s): a Hub
that does not resolve or refuses is one line at once, not the client's half-minute of retries.
Training pushes skip that check and keep their patience.

`upload_folder` may split a large upload into several commits; `push_folder` uses `create_commit`
with explicit operations, so one checkpoint is one commit. That commit also deletes every file the
branch holds that the folder does not (except `.gitattributes`), so each commit is one consistent
state. Before anything is sent, every file is checked for the configured token, and `.env` files
are never included.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import httpx2
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, constants
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from qa_core.config import Settings
from qa_core.errors import HubError

T = TypeVar("T")
# Read at call time, so that tests (and impatient scripts) can shorten them.
RETRIES = 3
BACKOFF_SECONDS = 1.0
ALREADY_RETRIED_SECONDS = 5.0
# What the Hub client raises when it cannot reach the server at all.
NETWORK_ERRORS = (httpx2.TransportError, ConnectionError, TimeoutError)
# Never pushed from a folder:
SKIPPED_DIRS = {".git", ".cache", "__pycache__"}
# A pickle of the trainer's arguments: not needed to use or resume a checkpoint, and it could carry a token.
NEVER_PUSHED = {"training_args.bin"}
KEPT_FILES = {".gitattributes"}  # repo settings, not part of any checkpoint


def api(settings: Settings) -> HfApi:
    """An `HfApi` for the configured endpoint and token."""
    return HfApi(endpoint=settings.hf_endpoint, token=settings.hub_token)


def unreachable_reason(endpoint: str, timeout: float = 3.0) -> str | None:
    """Why no TCP connection to the Hub `endpoint` opens within `timeout` seconds (offline mode, a
    name that does not resolve, refused, timed out), or None when one does."""
    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    url = urlsplit(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout):
            return None
    except socket.gaierror:
        return f"{url.hostname} does not resolve"
    except OSError as exc:
        return (exc.strerror or str(exc) or type(exc).__name__).lower()


def require_reachable(repo_id: str, settings: Settings) -> None:
    """Fail at once when the Hub cannot be reached at all (see the module docstring).

    Raises:
        HubError: one line naming the repo, the endpoint and why.
    """
    reason = unreachable_reason(settings.hf_endpoint)
    if reason:
        raise HubError(f"{repo_id}: cannot reach the Hub at {settings.hf_endpoint} ({reason})")


def xet_unsupported(exc: BaseException) -> bool:
    """True when an upload failed because the endpoint does not serve Xet storage (the client
    reports the 404 of its xet-write-token request as a ConnectionError)."""
    return isinstance(exc, NETWORK_ERRORS) and "xet-write-token" in str(exc) and "404" in str(exc)


def describe_hub_error(exc: Exception, repo_id: str, revision: str | None, endpoint: str) -> str:
    """Turn a Hub client exception into one line that says what to do; never includes a token."""
    at = f"@{revision}" if revision else ""
    if isinstance(exc, GatedRepoError):
        return f"{repo_id} is gated: accept its licence on the Hub and set HF_TOKEN"
    if isinstance(exc, RepositoryNotFoundError):
        return f"{repo_id}: repository not found on {endpoint}, or HF_TOKEN has no access to it"
    if isinstance(exc, RevisionNotFoundError):
        return f"{repo_id}: revision {revision!r} not found on {endpoint}"
    if isinstance(exc, (OfflineModeIsEnabled, LocalEntryNotFoundError)):
        return (
            f"{repo_id}{at} is not in the local cache and the Hub at {endpoint} cannot be used "
            "(offline mode, or no connection)"
        )
    if isinstance(exc, HfHubHTTPError) and exc.response is not None:
        status = exc.response.status_code
        if status == 401:
            return f"{endpoint} rejected the token (HTTP 401): check HF_TOKEN"
        if status == 403:
            return f"{repo_id}: the token may not access this repository (HTTP 403)"
        return f"{repo_id}{at}: the Hub at {endpoint} answered HTTP {status}"
    if xet_unsupported(exc):
        return (
            f"{repo_id}: the Hub at {endpoint} does not support Xet uploads (no xet-write-token route); "
            "set HF_HUB_DISABLE_XET=1 to upload without Xet"
        )
    if isinstance(exc, NETWORK_ERRORS):
        return f"{repo_id}{at}: cannot reach the Hub at {endpoint} ({type(exc).__name__})"
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{repo_id}{at}: request to the Hub at {endpoint} failed: {type(exc).__name__} {detail}".rstrip()


def is_transient(exc: BaseException) -> bool:
    """True for failures worth retrying: no connection, timeouts, rate limits, server errors."""
    if isinstance(exc, HfHubHTTPError) and exc.response is not None:
        return exc.response.status_code == 429 or exc.response.status_code >= 500
    return isinstance(exc, NETWORK_ERRORS) and not xet_unsupported(exc)


def call(
    operation: Callable[[], T],
    settings: Settings,
    repo_id: str,
    revision: str | None = None,
    retries: int | None = None,
    backoff: float | None = None,
) -> T:
    """Run `operation`, retrying transient failures `retries` times (waiting backoff, 2x, 4x ... s;
    by default RETRIES and BACKOFF_SECONDS).

    Raises:
        HubError: the operation failed for good; one line naming the repo and the cause.
    """
    retries = RETRIES if retries is None else retries
    backoff = BACKOFF_SECONDS if backoff is None else backoff
    for attempt in range(retries + 1):
        started = time.monotonic()
        try:
            return operation()
        except Exception as exc:
            failed_fast = time.monotonic() - started < ALREADY_RETRIED_SECONDS
            if attempt < retries and is_transient(exc) and failed_fast:
                time.sleep(backoff * 2**attempt)
                continue
            message = describe_hub_error(exc, repo_id, revision, settings.hf_endpoint)
            if is_transient(exc):
                message += " (gave up after retrying)"
            raise HubError(settings.redact(message)) from exc
    raise AssertionError("unreachable")


def _files(folder: Path) -> list[Path]:
    return sorted(
        path
        for path in folder.rglob("*")
        if path.is_file()
        and not path.name.startswith(".env")
        and path.name not in NEVER_PUSHED
        and not SKIPPED_DIRS.intersection(path.relative_to(folder).parts)
    )


def holds_token(content: bytes, settings: Settings) -> bool:
    """Whether `content` contains the Hugging Face token of `settings`."""
    return bool(settings.hf_token) and settings.hf_token.encode() in content


def check_for_token(name: str, content: bytes, settings: Settings) -> None:
    if holds_token(content, settings):
        raise HubError(f"{name} contains the Hugging Face token; refusing to push it")


def push_folder(
    folder: str | Path,
    repo_id: str,
    settings: Settings,
    title: str,
    description: str = "",
    extra_files: dict[str, str | bytes] | None = None,
    private: bool | None = None,
    retries: int | None = None,
    backoff: float | None = None,
    paths: list[str] | None = None,
    repo_type: str = "model",
    create: bool = True,
) -> str:
    """Push every file of `folder` (or only `paths`, relative to it; plus `extra_files`, path ->
    content) as one commit to `repo_id`, creating the repo first if needed (unless `create` is
    False: the caller made it); the same commit deletes the branch's other files.

    Returns:
        The new commit's sha.

    Raises:
        HubError: a file contains the token, no write access, or the Hub is unreachable.
    """
    folder = Path(folder)
    operations = []
    for path in _files(folder) if paths is None else [folder / name for name in paths]:
        name = path.relative_to(folder).as_posix()
        if name in (extra_files or {}):
            continue
        check_for_token(name, path.read_bytes(), settings)
        operations.append(CommitOperationAdd(name, str(path)))
    for name, content in (extra_files or {}).items():
        data = content.encode() if isinstance(content, str) else content
        check_for_token(name, data, settings)
        operations.append(CommitOperationAdd(name, data))
    if not operations:
        raise HubError(f"{folder}: nothing to push")
    hub = api(settings)
    if create:
        call(
            lambda: hub.create_repo(repo_id, private=private, exist_ok=True, repo_type=repo_type),
            settings,
            repo_id,
            None,
            retries,
            backoff,
        )

    def commit() -> str:
        # Listed right before committing, with that commit as the parent: a push in between fails
        # (HTTP 412) instead of leaving files of another checkpoint behind.
        head = hub.repo_info(repo_id, repo_type=repo_type)
        kept = KEPT_FILES | {op.path_in_repo for op in operations}
        stale = sorted({f.rfilename for f in head.siblings or []} - kept)
        deletes = [CommitOperationDelete(name) for name in stale]
        return hub.create_commit(
            repo_id,
            operations + deletes,
            repo_type=repo_type,
            commit_message=title,
            commit_description=description,
            parent_commit=head.sha,
        ).oid

    return call(commit, settings, repo_id, None, retries, backoff)
