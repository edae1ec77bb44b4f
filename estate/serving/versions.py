"""Which model answers a request: the champion, a canary, or a pinned version.

`ModelHolder` loads the serving pointer's champion and canary once per instance, then
re-reads the pointer at most every ``ESTATE_POINTER_REFRESH_SECONDS``; a new bundle is
loaded and verified (checksum, session, one smoke row) before the switch, and a bad one
is refused while the old models keep serving. Requests are split by a stable hash of
``X-Request-Id``; ``X-Model-Version`` pins a served version, and every response names
the version that answered in the same header.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from functools import partial

import flask
import numpy as np

from estate.contract.errors import (
    BundleError,
    ModelNotFoundError,
    ModelNotReadyError,
    NotFoundError,
    StoreError,
)
from estate.runtime.serving_model import ServingModel
from estate.serving.settings import ModelSettings
from estate.storage.pointer import ServingPointer
from estate.storage.registry import read_bundle, read_explainer, serving_pointer
from estate.storage.store import ArtifactStore, open_store

log = logging.getLogger("estate_advisor.functions")

#: Request header: a stable id for the canary split (a random one is used when absent).
REQUEST_ID_HEADER = "X-Request-Id"
#: Request header pinning a served version; the response header naming who answered.
PIN_HEADER = "X-Model-Version"


@dataclass(frozen=True)
class Routing:
    """What this instance serves: the champion and an optional canary with its share."""

    champion: ServingModel
    canary: ServingModel | None = None
    percent: float = 0.0
    pointer: ServingPointer | None = None  # None when a version is pinned by settings

    def models(self) -> list[ServingModel]:
        return [self.champion] + ([self.canary] if self.canary else [])


def in_canary(request_id: str, percent: float) -> bool:
    """Stable traffic split: the same request id always lands on the same side."""
    bucket = int.from_bytes(hashlib.sha256(request_id.encode()).digest()[:8], "big")
    return bucket / 2**64 * 100.0 < percent


def load_verified(
    store: ArtifactStore,
    name: str,
    version: str,
    threads: int,
    batch_threads: int = 1,
    explainer: bool = True,
) -> ServingModel:
    """Read a bundle, verify its checksum, build the session and run one smoke row.

    Raises `BundleError` (or a store error) for anything that would fail a request, so a
    bad bundle is refused before it is switched to. `explainer` False (a process that
    only predicts) reads the explainer, and parses the comparables table, on first use:
    their bytes are still checked against the manifest before they are used.
    """
    bundle = read_bundle(store, name, version, explainer=explainer)
    source = (
        bundle.explainer_bytes if explainer else partial(read_explainer, store, bundle.manifest)
    )
    try:
        model = ServingModel(
            bundle.manifest,
            bundle.model_bytes,
            threads,
            source,
            card_bytes=bundle.card_bytes,
            comparables_bytes=bundle.comparables_bytes,
            batch_threads=batch_threads,
            load_explainer=explainer,
        )
        numeric = np.full((1, len(model.numeric)), np.nan, dtype=np.float64)
        categorical = np.empty((1, len(model.categorical)), dtype=object)
        categorical[0, :] = [c.impute for c in model.categorical]
        prediction, raw, _ = model.run(numeric, categorical)
        if explainer and model.comparable_sales is not None:  # predict's: on first use
            model.comparables(numeric, categorical, 1)
    except Exception as exc:  # onnxruntime raises its own types for a bad graph
        raise BundleError(f"{name}/{version} does not run: {exc}") from exc
    if prediction.shape != (1,) or not np.all(np.isfinite(prediction)) or raw.shape != (1,):
        raise BundleError(
            f"{name}/{version} answered {prediction!r} for an all-imputed row; not serving it."
        )
    return model


class ModelHolder:
    """Lazy, thread-safe, self-refreshing holder of the instance's models.

    The first request loads the pointer's champion (and canary); a failure is not cached,
    so an instance recovers by itself when the store comes back. Afterwards the pointer
    is re-read at most every ``pointer_refresh_seconds``: new versions are loaded and
    verified (`load_verified`) before the switch, and if one is bad the instance keeps
    serving what it had and logs why.
    """

    def __init__(self, settings: ModelSettings, retry_interval: float = 2.0) -> None:
        self.settings = settings
        self.retry_interval = retry_interval
        self._routing: Routing | None = None
        self._lock = threading.Lock()
        self._checked_at = 0.0
        self._last_failure: tuple[float, ModelNotReadyError] | None = None
        self.load_seconds: float | None = None
        #: Build each bundle's explainer (and refuse a bundle whose explainer does not
        #: read) at load; a process that only predicts defers it (`defer_explainers`).
        self.explainers_at_load = True
        self._explainers_needed = False

    def defer_explainers(self) -> None:
        """predict's process: read explainers on first use, unless a function of this
        process explains (`need_explainers`)."""
        self.explainers_at_load = self._explainers_needed

    def need_explainers(self) -> None:
        """explain's and chat's: explainers are built and checked when a bundle loads."""
        self._explainers_needed = self.explainers_at_load = True

    def get(self) -> ServingModel:
        """The champion (what a request without routing information gets)."""
        return self.routing().champion

    def routing(self) -> Routing:
        routing = self._routing
        if routing is None:
            with self._lock:
                if self._routing is None:
                    self._routing = self._load()
                    self._checked_at = time.monotonic()
                return self._routing
        if routing.pointer is not None and self._refresh_due():
            self._refresh(routing)
        return self._routing or routing

    def route(self, request_id: str | None, pinned: str | None = None) -> ServingModel:
        """The model that answers a request: the pinned version, else canary or champion."""
        routing = self.routing()
        if pinned:
            for model in routing.models():
                if model.manifest.version == pinned:
                    return model
            served = ", ".join(m.manifest.version for m in routing.models())
            raise ModelNotFoundError(
                f"{PIN_HEADER}: {pinned[:80]!r} is not served by this function (it serves "
                f"{served}). Pin one of those, or drop the header."
            )
        if routing.canary is not None and in_canary(
            request_id or uuid.uuid4().hex, routing.percent
        ):
            return routing.canary
        return routing.champion

    def _refresh_due(self) -> bool:
        return time.monotonic() - self._checked_at >= self.settings.pointer_refresh_seconds

    def _refresh(self, current: Routing) -> None:
        """Re-read the pointer; switch only to models that loaded and verified."""
        if not self._lock.acquire(blocking=False):
            return  # another request is refreshing; keep answering with the current models
        try:
            if not self._refresh_due():
                return
            self._checked_at = time.monotonic()
            s = self.settings
            store = open_store(s.artifacts)
            pointer = serving_pointer(store, s.model_name)
            old = current.pointer
            if old is not None and (pointer.champion, pointer.canary) == (
                old.champion,
                old.canary,
            ):
                return
            self._routing = self._routing_for(store, pointer, current)
        except (StoreError, BundleError) as exc:
            log.error(
                "pointer of %r unreadable (%s); still serving %s",
                self.settings.model_name,
                exc,
                _versions(current),
            )
        finally:
            self._lock.release()

    def _routing_for(
        self, store: ArtifactStore, pointer: ServingPointer, current: Routing | None
    ) -> Routing:
        """Models for `pointer`, reusing loaded ones; a bad champion keeps `current`."""
        loaded = {m.manifest.version: m for m in (current.models() if current else [])}
        threads = self.settings.ort_threads
        name = self.settings.model_name

        def load(version: str) -> ServingModel:
            return loaded.get(version) or load_verified(
                store,
                name,
                version,
                threads,
                self.settings.ort_batch_threads,
                self.explainers_at_load,
            )

        try:
            champion = load(pointer.champion)
        except (StoreError, BundleError) as exc:
            if current is None:
                raise
            log.error(
                "refused new champion %s/%s: %s; still serving %s",
                name,
                pointer.champion,
                exc,
                _versions(current),
            )
            # Keep the old routing (and its pointer): the next refresh tries the new one again.
            return current
        canary, percent = None, 0.0
        if pointer.canary is not None:
            try:
                canary, percent = load(pointer.canary.version), pointer.canary.percent
            except (StoreError, BundleError) as exc:
                log.error(
                    "refused canary %s/%s: %s; the champion %s answers everything",
                    name,
                    pointer.canary.version,
                    exc,
                    pointer.champion,
                )
        routing = Routing(champion, canary, percent, pointer)
        if current is not None:
            log.warning("%s now serves %s", name, _versions(routing))
        return routing

    def _load(self) -> Routing:
        s = self.settings
        now = time.monotonic()
        if self._last_failure and now - self._last_failure[0] < self.retry_interval:
            raise self._last_failure[1]
        start = time.perf_counter()
        try:
            store = open_store(s.artifacts)
            if s.model_version:  # pinned by configuration: never follow the pointer
                model = load_verified(
                    store,
                    s.model_name,
                    s.model_version,
                    s.ort_threads,
                    s.ort_batch_threads,
                    self.explainers_at_load,
                )
                routing = Routing(model)
            else:
                routing = self._routing_for(store, serving_pointer(store, s.model_name), None)
        except NotFoundError as exc:
            error = ModelNotReadyError(
                f"No servable model {s.model_name!r} in {s.artifacts} ({exc}). Train one: "
                "estate train --config configs/ames.toml "
                f"--store {s.artifacts}",
                s.retry_after_seconds,
            )
            self._last_failure = (now, error)
            raise error from None
        except BundleError as exc:
            error = ModelNotReadyError(
                f"The bundle for {s.model_name!r} was refused: {exc}", s.retry_after_seconds
            )
            self._last_failure = (now, error)
            raise error from None
        except StoreError as exc:
            error = ModelNotReadyError(
                f"The artifact store is unreachable: {exc}", s.retry_after_seconds
            )
            self._last_failure = (now, error)
            raise error from None
        self.load_seconds = time.perf_counter() - start
        self._last_failure = None
        return routing


def _versions(routing: Routing) -> str:
    text = f"champion {routing.champion.manifest.version}"
    if routing.canary is not None:
        text += f" + canary {routing.canary.manifest.version} at {routing.percent:g}%"
    return text


_holder: ModelHolder | None = None


def holder(settings: ModelSettings) -> ModelHolder:
    """This instance's model holder, shared by every function in the process (lazy global,
    built from the first caller's settings: every function of a process reads the same
    environment).

    It follows the serving pointer (champion + canary); functions pick a model per
    request with `model_for`.
    """
    global _holder
    if _holder is None:
        _holder = ModelHolder(settings)
    return _holder


def model_for(request: flask.Request, settings: ModelSettings) -> ServingModel:
    """The model that should answer `request` (pinned, canary or champion).

    Every function calls this instead of ``holder(settings).get()``, and sets
    ``PIN_HEADER: model.manifest.version`` on its response (see `answered_by`).
    """
    return holder(settings).route(
        request.headers.get(REQUEST_ID_HEADER), request.headers.get(PIN_HEADER) or None
    )


def answered_by(response: flask.Response, model: ServingModel | None) -> flask.Response:
    """Name the version that answered in the response headers."""
    if model is not None:
        response.headers[PIN_HEADER] = model.manifest.version
    return response
