"""The bundle contract between training and serving, defined once.

A bundle is an immutable folder in the artifact store::

    models/<name>/<version>/model.onnx     one ONNX graph: preprocessing + model + output
    models/<name>/<version>/manifest.json  `Manifest` below, including model.onnx's sha256
    models/<name>/<version>/explainer.npz  optional: SHAP tables (`ExplainerSpec`,
                                           `EXPLAINER_ARRAYS`), checksummed
    models/<name>/<version>/model_card.md  optional: the model card (`ModelCard`), checksummed
    models/<name>/<version>/comparables.npz  optional: training sales (`ComparablesSpec`)
    models/<name>/serving.json             the serving pointer (`estate.storage.pointer`), last

The ONNX graph always has the same interface, so serving needs nothing but this module:

* inputs ``numeric`` (double ``[N, len(numeric features)]``, NaN = missing) and
  ``categorical`` (string ``[N, len(categorical features)]``), columns in manifest order;
  an input is absent when the data set has no feature of that kind;
* outputs ``prediction`` (float ``[N]``: the target in its own units, or the positive
  class probability) and ``raw`` (float ``[N]``: the model's own scale, e.g. log price);
  a regression graph with an adaptive interval (``interval.adaptive``) has a third,
  ``scale`` (float ``[N]``: the expected size of this row's error, in the raw scale).

Compatibility rule (manifest and serving pointer alike):

1. `FORMAT_VERSION` is a major version. Within it a writer may only **add an optional
   field whose absence means the old behaviour** (a default of None, or the old value),
   and every reader **ignores fields it does not know**. So a bundle written by a newer
   training run still loads in an older deployment of the same major version, and serves
   exactly as it did before the field existed. (An older writer that rewrites a file, e.g.
   ``estate promote`` from an older release, drops the fields it does not know; by the same
   rule that falls back to the old behaviour.)
2. Anything an older reader would misread **bumps the version**: renaming, removing or
   retyping a field, a new required field, a new meaning for an existing one, or a new
   field serving must act on to answer correctly (e.g. a new output transform). Readers
   refuse a version they do not know; the reader of version N keeps reading N-1 for one
   major (an entry in `READERS` that upgrades it to today's `Manifest`).
3. Typos stay out on the write side: writers build these models from named, typed
   arguments, which mypy checks (pydantic plugin, ``init_forbid_extra`` and ``init_typed``
   in pyproject.toml), and the registry reads every manifest back before writing it.

tests/unit/contract/test_bundle_compat.py holds a bundle written by the v1 code
(tests/support/bundles/v1/) to keep rule 1 honest.

This module holds the layout (format version, file and store names, the graph's input and
output names, checksums) and reads and verifies manifests; the models live in
`estate.contract.schema` (input and output schema, the packing rule for category text)
and `estate.contract.manifest` (the rest, and `Manifest`), and are re-exported here, so
``from estate.contract.bundle import X`` names the whole contract.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from pydantic import ValidationError

from estate.contract.errors import BundleError
from estate.contract.manifest import (
    OTHER_CATEGORY,
    AdaptiveInterval,
    CandidateResult,
    CategoricalHistogram,
    ComparablesSpec,
    ConformalInterval,
    DecisionThreshold,
    DriftReference,
    ExplainerSpec,
    FeatureRange,
    FifthCoverage,
    GateResult,
    IntervalComparison,
    Lineage,
    Manifest,
    ModelCard,
    ModelFile,
    NumericHistogram,
    Parity,
    PredictCost,
    Promotion,
)
from estate.contract.schema import (
    MISSING_CATEGORY,
    ORDINAL_MISSING_LEVEL,
    CategoricalFeature,
    ContractModel,
    DerivedFeature,
    InputSchema,
    NumericFeature,
    OutputSpec,
    Task,
    category_text,
    normalize_category,
    ordinal_levels,
)

__all__ = [
    "CATEGORICAL_INPUT",
    "COMPARABLES_FILE",
    "EXPLAINER_ARRAYS",
    "EXPLAINER_FILE",
    "EXPLAINER_SOLVED_PREFIX",
    "FORMAT_VERSION",
    "MANIFEST_FILE",
    "MISSING_CATEGORY",
    "MODEL_CARD_FILE",
    "MODEL_FILE",
    "NUMERIC_INPUT",
    "ORDINAL_MISSING_LEVEL",
    "OTHER_CATEGORY",
    "POINTER_FILE",
    "PREDICTION_OUTPUT",
    "RAW_OUTPUT",
    "READERS",
    "SCALE_OUTPUT",
    "AdaptiveInterval",
    "CandidateResult",
    "CategoricalFeature",
    "CategoricalHistogram",
    "ComparablesSpec",
    "ConformalInterval",
    "ContractModel",
    "DecisionThreshold",
    "DerivedFeature",
    "DriftReference",
    "ExplainerSpec",
    "FeatureRange",
    "FifthCoverage",
    "GateResult",
    "InputSchema",
    "IntervalComparison",
    "Lineage",
    "Manifest",
    "ModelCard",
    "ModelFile",
    "NumericFeature",
    "NumericHistogram",
    "OutputSpec",
    "Parity",
    "PredictCost",
    "Promotion",
    "Task",
    "category_text",
    "check_format_version",
    "model_prefix",
    "new_version",
    "normalize_category",
    "ordinal_levels",
    "parse_manifest",
    "pointer_key",
    "sha256_hex",
    "verify_card_bytes",
    "verify_comparables_bytes",
    "verify_explainer_bytes",
    "verify_model_bytes",
    "version_prefix",
]

FORMAT_VERSION: Final = 1
MODEL_FILE: Final = "model.onnx"
MANIFEST_FILE: Final = "manifest.json"
EXPLAINER_FILE: Final = "explainer.npz"
MODEL_CARD_FILE: Final = "model_card.md"
COMPARABLES_FILE: Final = "comparables.npz"
POINTER_FILE: Final = "serving.json"

#: The explainer file: numpy arrays only (read with ``allow_pickle=False``), written by
#: `estate.export.shap_tables`, read by `estate.runtime.explainer`. Every file holds these:
#: the encoded columns the tables explain (``encoded_names``, must equal the manifest's
#: input schema), exact linear SHAP (``linear_coef``, ``linear_mean``), the base value,
#: the trees' node tables (``node_*``, ``tree_*``) and their root-to-leaf paths
#: (``path_*``, what TreeSHAP walks).
EXPLAINER_ARRAYS: Final = (
    "encoded_names",
    "linear_coef",
    "linear_mean",
    "base_value",
    "node_feature",
    "node_threshold",
    "node_left",
    "node_right",
    "node_default_left",
    "node_value",
    "node_cover",
    "tree_start",
    "tree_weight",
    "tree_leq",
    "path_feature",
    "path_lower",
    "path_upper",
    "path_zero",
    "path_missing",
    "path_leq",
    "path_value",
    "path_length",
)
#: Optional, by rule 1 below: TreeSHAP's lookup tables solved from the paths at export
#: (keys with this prefix, laid out by `estate.runtime.treeshap.TreePaths.solved_arrays`
#: and tagged with its ``SOLVED_FORMAT``), so loading reads them instead of solving them.
#: A reader that finds none (files written before them) or another layout solves them
#: from the ``path_*`` arrays, with the same result; readers ignore other keys.
EXPLAINER_SOLVED_PREFIX: Final = "solved_"

NUMERIC_INPUT = "numeric"
CATEGORICAL_INPUT = "categorical"
PREDICTION_OUTPUT = "prediction"
RAW_OUTPUT = "raw"
#: Optional third output: the per-row interval scale (`AdaptiveInterval`).
SCALE_OUTPUT = "scale"


def model_prefix(name: str) -> str:
    """Store prefix of every version of the model `name`."""
    return f"models/{name}"


def version_prefix(name: str, version: str) -> str:
    """Store prefix of one immutable bundle."""
    return f"{model_prefix(name)}/{version}"


def pointer_key(name: str) -> str:
    """Store key of the serving pointer of model `name`."""
    return f"{model_prefix(name)}/{POINTER_FILE}"


def new_version(now: datetime | None = None, salt: bytes = b"") -> str:
    """A sortable, unique-enough version id: UTC time plus a short content hash."""
    now = now or datetime.now(UTC)
    digest = hashlib.sha256(salt + now.isoformat().encode()).hexdigest()[:6]
    return now.strftime("v%Y%m%dT%H%M%SZ") + "-" + digest


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of `data`: how every checksum in a manifest is written."""
    return hashlib.sha256(data).hexdigest()


#: Format version → how a manifest of that version becomes today's `Manifest`. A version
#: bump adds the new reader and keeps the previous one, upgrading, for one major (rule 2).
READERS: dict[int, Callable[[dict[str, Any]], Manifest]] = {
    FORMAT_VERSION: Manifest.model_validate,
}


def check_format_version(found: object, what: str) -> int:
    """The format version of `what` if this code reads it; else a `BundleError` saying why."""
    readable = ", ".join(str(v) for v in sorted(READERS))
    if isinstance(found, int) and not isinstance(found, bool) and found in READERS:
        return found
    if isinstance(found, int) and not isinstance(found, bool) and found > max(READERS):
        raise BundleError(
            f"{what}: format version {found} is not supported: it was written by a newer "
            f"estate-advisor, and this code reads version {readable}. Deploy the release "
            "that wrote it (or a newer one), or re-export the model with this one."
        )
    raise BundleError(
        f"{what}: format version {found!r} is not supported: this code reads version "
        f"{readable}. Deploy a matching estate-advisor release or re-export the model."
    )


def parse_manifest(data: bytes) -> Manifest:
    """Parse and check a manifest, refusing format versions this code does not know."""
    try:
        raw = json.loads(data)
    except ValueError as exc:
        raise BundleError(
            f"{MANIFEST_FILE} is not valid JSON ({exc}); re-export the model."
        ) from exc
    if not isinstance(raw, dict):
        raise BundleError(f"{MANIFEST_FILE} must hold a JSON object; re-export the model.")
    found = check_format_version(raw.get("format_version"), MANIFEST_FILE)
    try:
        return READERS[found](raw)
    except ValidationError as exc:
        raise BundleError(f"{MANIFEST_FILE} does not match format {found}: {exc}") from exc


def _verify_side_file(
    manifest: Manifest,
    spec: ExplainerSpec | ModelCard | ComparablesSpec | None,
    what: str,
    data: bytes,
) -> None:
    """Refuse a side file that is undeclared, truncated or tampered: its size and sha256
    must match the manifest's entry, exactly like the model file."""
    if spec is None:
        raise BundleError(f"{manifest.name}/{manifest.version} declares no {what}.")
    if len(data) != spec.bytes or sha256_hex(data) != spec.sha256:
        raise BundleError(
            f"{spec.file} of {manifest.name}/{manifest.version} has {len(data)} bytes and "
            f"sha256 {sha256_hex(data)}, the manifest says {spec.bytes} and {spec.sha256}: "
            "the file is truncated or altered. Re-export the bundle; it will not be served."
        )


def verify_explainer_bytes(manifest: Manifest, data: bytes) -> None:
    """Refuse a truncated or tampered explainer file."""
    _verify_side_file(manifest, manifest.explainer, "explainer", data)


def verify_card_bytes(manifest: Manifest, data: bytes) -> None:
    """Refuse a truncated or tampered model card."""
    _verify_side_file(manifest, manifest.model_card, "model card", data)


def verify_comparables_bytes(manifest: Manifest, data: bytes) -> None:
    """Refuse a truncated or tampered comparables table."""
    _verify_side_file(manifest, manifest.comparables, "comparables table", data)


def verify_model_bytes(manifest: Manifest, model_bytes: bytes) -> None:
    """Refuse a truncated or tampered model.onnx: size and sha256 must match the manifest."""
    if len(model_bytes) != manifest.model_file.bytes:
        raise BundleError(
            f"{MODEL_FILE} of {manifest.name}/{manifest.version} has {len(model_bytes)} bytes, "
            f"the manifest says {manifest.model_file.bytes}: the bundle is truncated or "
            "half-written. Re-export it; it will not be served."
        )
    digest = sha256_hex(model_bytes)
    if digest != manifest.model_file.sha256:
        raise BundleError(
            f"{MODEL_FILE} of {manifest.name}/{manifest.version} has sha256 {digest}, the "
            f"manifest says {manifest.model_file.sha256}: the file was altered. Re-export it; "
            "it will not be served."
        )
