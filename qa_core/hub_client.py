"""Talk to the Hub: an `HfApi` bound to the configured endpoint and token, retries, clear errors.

Transient failures (connection errors, timeouts, HTTP 429 and 5xx) are retried with exponential
backoff; everything else fails at once. Many client calls (listings, commits, uploads) already
retry with their own backoff, for about 20 s; a failure that took that long is not retried again,
or the waits would multiply. Every failure becomes one `HubError` line that names the
repo and says what to do, and never contains the token.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError

from qa_core.config import Settings
from qa_core.errors import QAError
from qa_core.snapshots import NETWORK_ERRORS, describe_hub_error, xet_unsupported

T = TypeVar("T")
# Read at call time, so that tests (and impatient scripts) can shorten them.
RETRIES = 3
BACKOFF_SECONDS = 1.0
ALREADY_RETRIED_SECONDS = 5.0


class HubError(QAError):
    """A Hub operation failed; the message says which repo, what happened and what to do."""


def api(settings: Settings) -> HfApi:
    """An `HfApi` for the configured endpoint and token."""
    return HfApi(endpoint=settings.hf_endpoint, token=settings.hub_token)


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
