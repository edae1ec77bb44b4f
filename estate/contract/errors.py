"""The project's exceptions: one base class, a few specific kinds.

Every message says what was expected, what was found and what to do next.
"""

from __future__ import annotations


class EstateAdvisorError(Exception):
    """Base class of every error this project raises on purpose."""


class StoreError(EstateAdvisorError):
    """The artifact store could not complete an operation."""


class NotFoundError(StoreError):
    """A key does not exist in the artifact store."""


class AlreadyExistsError(StoreError):
    """A create-only write hit an existing key (bundle versions are immutable)."""


class StoreUnavailableError(StoreError):
    """The store could not be reached; retrying later may succeed."""


class BundleError(EstateAdvisorError):
    """A model bundle is missing, malformed, tampered with or of an unknown format."""


class ExportError(EstateAdvisorError):
    """A model could not be exported faithfully (e.g. ONNX parity above tolerance)."""


class ConfigError(EstateAdvisorError):
    """A data-set config or the data it describes is not usable."""


class ConflictError(StoreError):
    """A compare-and-swap write lost a race: the object changed since it was read."""


class PromotionError(EstateAdvisorError):
    """A promotion, canary or rollback is not possible in the pointer's current state."""
