"""The project's exceptions: one base class, a few specific kinds.

Every message says what was expected, what was found and what to do next.
"""

from __future__ import annotations

from dataclasses import dataclass


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


# -- what a request can be refused for ------------------------------------------------------
# The core (runtime, chat) raises these; the serving edge (`estate.serving.problems`) maps
# each kind to one HTTP status and a problem+json body, in one table.


@dataclass
class FieldError:
    """One bad field: where it is (``instances[0].Overall.Qual``), what is wrong."""

    field: str
    message: str
    type: str

    def to_json(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message, "type": self.type}


class RequestError(EstateAdvisorError):
    """A request the core cannot answer as asked: a detail for people and the fields at fault.

    `errors` may be capped by whoever built it; `errors_omitted` counts the field errors
    found but not kept, so an answer stays small however many fields are wrong.
    """

    def __init__(
        self, detail: str, errors: list[FieldError] | None = None, errors_omitted: int = 0
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors: list[FieldError] = list(errors or [])
        self.errors_omitted = errors_omitted

    def __str__(self) -> str:
        return self.detail

    def renamed(self, old: str, new: str) -> None:
        """Rewrite the field paths (and the detail) that start with `old` as `new`: the chat
        tools validate rows as ``instances[0]`` and name them as their caller wrote them."""
        self.errors = [
            FieldError(e.field.replace(old, new, 1), e.message, e.type) for e in self.errors
        ]
        self.detail = self.detail.replace(old, new)


class InvalidInputError(RequestError):
    """The input breaks the contract: unknown fields, wrong types, an empty instance."""


class TooLargeError(RequestError):
    """More work than one request may ask for (instances, messages, characters)."""


class CannotEstimateError(RequestError):
    """Valid input the model cannot answer finitely (inputs far outside the training data),
    or terms the analytics cannot work with."""


class NotExplainableError(RequestError):
    """The served bundle has no explainer."""


class UnsupportedModelError(RequestError):
    """The served bundle cannot answer this function at all (analyze on a classifier)."""


class NoComparablesError(RequestError):
    """The served bundle has no table of comparable sales (see the message for why)."""


class ModelNotFoundError(RequestError):
    """The version a request pinned is not one this instance serves."""


class ModelNotReadyError(RequestError):
    """No model can answer now (store unreachable, bundle refused); retry after a while."""

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
