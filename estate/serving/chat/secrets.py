"""The LLM API key: from Secret Manager in the cloud, from the environment locally.

The Secret Manager client is imported only when a secret is configured (it is an
optional extra, ``estate-advisor[chat]``), the value is cached per instance, and it is
never logged: errors name the secret, never its value.

A key from either source is stripped (``echo KEY | gcloud secrets versions add
--data-file=-`` stores a trailing newline) and checked: one that still cannot go in an
HTTP header is refused here, with its position, before http.client could raise an
error quoting the whole ``Authorization`` header. `SecretError` messages may name the
secret (for the log); callers show users only that the key could not be read.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time

from estate.contract.errors import EstateAdvisorError
from estate.serving.chat.llm import key_problem
from estate.serving.function_settings import ChatSettings

log = logging.getLogger("estate_advisor.secrets")

_cache: dict[tuple[str, str | None], str] = {}
_failures: dict[tuple[str, str | None], tuple[float, SecretError]] = {}
_lock = threading.Lock()


class SecretError(EstateAdvisorError):
    """The secret could not be read; the message says which one and what to check."""


def clean_key(raw: str, source: str) -> str:
    """`raw` without surrounding whitespace, or a `SecretError` saying (never showing) why
    it cannot be a bearer token."""
    key = raw.strip()
    problem = key_problem(key)
    if problem is not None:
        raise SecretError(f"The LLM API key from {source} {problem}.")
    return key


def access_secret(name: str, endpoint: str | None = None, timeout: float = 10.0) -> str:
    """The text of a secret version, e.g. ``projects/p/secrets/groq-key/versions/latest``.

    `endpoint` ``http://host:port`` targets a local emulator over REST without
    credentials; any other endpoint (or none: Google's) uses application default
    credentials.
    """
    try:
        # importlib: a static import would make mypy treat google.cloud as typed and
        # hide the untyped google.cloud.storage (see the mypy overrides in pyproject.toml).
        secretmanager = importlib.import_module("google.cloud.secretmanager")
        from google.api_core import exceptions as api_exceptions
    except ImportError:
        raise SecretError(
            "google-cloud-secret-manager is not installed: pip install 'estate-advisor[chat]'"
        ) from None
    if endpoint and endpoint.startswith("http://"):
        from google.auth.credentials import AnonymousCredentials

        client = secretmanager.SecretManagerServiceClient(
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            transport="rest",
            client_options={"api_endpoint": endpoint},
        )
    elif endpoint:
        client = secretmanager.SecretManagerServiceClient(client_options={"api_endpoint": endpoint})
    else:
        client = secretmanager.SecretManagerServiceClient()
    try:
        response = client.access_secret_version(request={"name": name}, timeout=timeout)
    except api_exceptions.GoogleAPICallError as exc:
        raise SecretError(
            f"Secret Manager refused {name!r} ({exc.code}): check the name and that the "
            "function's service account has roles/secretmanager.secretAccessor"
        ) from None
    except Exception as exc:  # credentials, retries exhausted, transport: never a 500
        raise SecretError(
            f"Secret Manager could not be asked for {name!r} ({type(exc).__name__}): check "
            "the function's credentials and network"
        ) from None
    data: bytes = response.payload.data
    expected = response.payload.data_crc32c
    if expected:
        import google_crc32c

        if google_crc32c.value(data) != expected:
            raise SecretError(f"The secret {name!r} arrived corrupted (CRC32C mismatch).")
    return clean_key(data.decode("utf-8", "replace"), f"secret {name!r}")


def api_key(settings: ChatSettings, timeout: float = 10.0) -> str | None:
    """The LLM API key (cached per instance), or None when none is configured.

    Raises `SecretError` when the configured key cannot be read or used.
    """
    if settings.llm_api_key_secret:
        cache_key = (settings.llm_api_key_secret, settings.secret_manager_endpoint)
        with _lock:
            if cache_key not in _cache:
                failed = _failures.get(cache_key)
                if failed and time.monotonic() - failed[0] < settings.retry_after_seconds:
                    raise failed[1]  # do not wait on a failing Secret Manager every request
                try:
                    _cache[cache_key] = access_secret(*cache_key, timeout=timeout)
                except SecretError as exc:
                    _failures[cache_key] = (time.monotonic(), exc)
                    raise
                _failures.pop(cache_key, None)
                log.info("read the LLM API key from Secret Manager (%s)", cache_key[0])
            return _cache[cache_key]
    if settings.llm_api_key is not None:
        return clean_key(settings.llm_api_key.get_secret_value(), "ESTATE_LLM_API_KEY")
    return None


def clear_cache() -> None:
    """Forget cached secrets (tests; or to pick up a rotated key)."""
    with _lock:
        _cache.clear()
        _failures.clear()
