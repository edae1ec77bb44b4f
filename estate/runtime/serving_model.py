"""The served model: a verified bundle, its ONNX session and the packing of instances.

Imports numpy, onnxruntime and pydantic only; no settings, no HTTP. Online serving
(`estate.serving.versions` loads it once per instance, after the bundle's checksum is
verified) and batch scoring (`estate.batch.score`) run the same object.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from pydantic import TypeAdapter

from estate.contract.bundle import MODEL_FILE, SCALE_OUTPUT, Manifest
from estate.contract.errors import BundleError, NoComparablesError
from estate.contract.instances import (
    MAX_STRING,
    column_rows,
    instance_adapter,
    require_values,
    validate_columns,
    validate_instances,
)
from estate.runtime.comparables import Comparables
from estate.runtime.dict_packing import DictPacker
from estate.runtime.input_warnings import InputWarnings
from estate.runtime.outputs import intervals
from estate.runtime.packing import Packed
from estate.runtime.session import OUTPUTS, open_session

if TYPE_CHECKING:
    from estate.runtime.explainer import Explainer


@dataclass
class Prediction:
    """One row's outputs plus the warnings about its input."""

    value: float
    raw: float
    warnings: list[dict[str, str]] = field(default_factory=list)
    scale: float | None = None  # the adaptive interval's scale output (None: fixed band)


class Outputs(NamedTuple):
    """The graph's outputs for a batch: the answer, the raw score and, for a bundle with
    an adaptive interval, each row's interval scale (else None); `intervals` takes both."""

    prediction: np.ndarray
    raw: np.ndarray
    scale: np.ndarray | None


#: Fewest rows per block when a batch is split over ``batch_threads``.
BATCH_SPLIT_ROWS = 128


class ServingModel:
    """A loaded bundle, ready to predict raw JSON instances."""

    def __init__(
        self,
        manifest: Manifest,
        model_bytes: bytes,
        threads: int = 1,
        explainer_bytes: bytes | Callable[[], bytes | None] | None = None,
        card_bytes: bytes | None = None,
        comparables_bytes: bytes | None = None,
        batch_threads: int = 1,
        load_explainer: bool = True,
    ) -> None:
        """`load_explainer` False defers reading the explainer to its first use (predict
        never explains: ~90 ms of CPU off its cold start). `explainer_bytes` may be a
        reader (`estate.storage.registry.read_explainer`, bound): then the file itself is
        read and verified only then."""
        self.manifest = manifest
        #: Batches of `BATCH_SPLIT_ROWS` rows or more run in up to this many parts at once.
        self.batch_threads = batch_threads
        self._pool: ThreadPoolExecutor | None = None
        self.card_text = card_bytes.decode() if card_bytes is not None else None
        self._explainer_source = explainer_bytes
        self._explainer: Explainer | None = None
        self._explainer_lock = threading.Lock()
        if load_explainer and explainer_bytes:
            self._explainer = self._load_explainer()
        self.session = open_session(model_bytes, threads)
        #: The comparables table's bytes (checksummed by the store's reader), parsed on
        #: first use (`comparable_sales`): only a request asking for comparables needs it.
        self._comparables_bytes = comparables_bytes if manifest.comparables is not None else None
        self._comparables: Comparables | None = None
        self._comparables_lock = threading.Lock()
        adaptive = manifest.interval is not None and manifest.interval.adaptive is not None
        if adaptive and SCALE_OUTPUT not in self.session.outputs:
            raise BundleError(
                f"{manifest.name}/{manifest.version}: the manifest declares an adaptive "
                f"interval but {MODEL_FILE} has no {SCALE_OUTPUT!r} output; re-export the bundle."
            )
        self._outputs = (*OUTPUTS, SCALE_OUTPUT) if adaptive else OUTPUTS
        schema = manifest.input
        self.labels = schema.labels()  # feature → readable label, where the config gave one
        self.units = {f.name: f.unit for f in schema.numeric if f.unit}
        self.units |= {c.name: c.unit for c in schema.categorical if c.unit}
        self.units |= {d.name: d.unit for d in schema.derived_features() if d.unit}
        self.numeric = schema.numeric
        self.categorical = schema.categorical
        self._packer = DictPacker(schema)
        #: The input notes (imputed, out of range, unknown), their texts built once.
        self._warnings = InputWarnings(schema)
        #: The instance validator, built on first use (`adapter`): a clean request never
        #: needs it, and building it cost ~15 ms of every cold start.
        self._adapter: TypeAdapter[list[dict[str, Any]]] | None = None
        self._adapter_lock = threading.Lock()
        #: The adapter's field names, without building its JSON Schema on the first request.
        self._known = frozenset(schema.names())

    @property
    def adapter(self) -> TypeAdapter[list[dict[str, Any]]]:
        """The contract's validator of a list of instances (`instance_adapter`), built on
        first use: by a request that is not clean, a GET, explain or chat."""
        if self._adapter is None:
            with self._adapter_lock:
                if self._adapter is None:
                    self._adapter = instance_adapter(self.manifest.input)
        return self._adapter

    @property
    def comparable_sales(self) -> Comparables | None:
        """The bundle's training sales (`estate.runtime.comparables`), None without them;
        parsed on first use (~5 ms of every cold start otherwise). `BundleError` for a
        table that does not match its manifest."""
        if self._comparables is None and self._comparables_bytes is not None:
            with self._comparables_lock:
                if self._comparables is None:
                    self._comparables = Comparables(self.manifest, self._comparables_bytes)
        return self._comparables

    @property
    def explainer(self) -> Explainer | None:
        """The bundle's SHAP explainer (None if it has none), built on first use if the
        model was loaded without it (`BundleError` then, for an unreadable file)."""
        if self._explainer is None and self._explainer_source:
            with self._explainer_lock:
                if self._explainer is None:
                    self._explainer = self._load_explainer()
        return self._explainer

    def _load_explainer(self) -> Explainer | None:
        source = self._explainer_source
        data = source() if callable(source) else source
        if not data:
            self._explainer_source = None
            return None
        return _read_explainer(self.manifest, data)

    @property
    def feature_names(self) -> list[str]:
        return self.manifest.input.names()

    def pack(
        self, instances: list[dict[str, Any]]
    ) -> tuple[np.ndarray, np.ndarray, list[list[dict[str, str]]]]:
        """Validated instances → the two ONNX inputs, and per-row warnings.

        Notes keep the per-row order: numeric features first, then categorical, in
        manifest order. For large batches use `pack_flags` and `warning_summary`, which
        never build one note per cell.
        """
        packed = self.pack_flags(instances)
        warnings: list[list[dict[str, str]]] = [[] for _ in range(len(instances))]
        flagged = (packed.missing_numeric | packed.outside).any(axis=1) | (
            packed.missing_category | packed.unknown
        ).any(axis=1)
        row_warnings = self._warnings.row_warnings  # the loop calls it with no hop
        for i in np.flatnonzero(flagged).tolist():
            warnings[i] = row_warnings(packed, i)
        return packed.numeric, packed.categorical, warnings

    def pack_flags(self, instances: list[dict[str, Any]]) -> Packed:
        """Validated instances → the two ONNX inputs, and which cells to warn about
        (`estate.runtime.packing`: the one packing rule, vectorised)."""
        return self._packer.pack(instances)

    def pack_checked(self, rows: list[Any], max_field_errors: int) -> Packed:
        """Raw JSON instances → `Packed`, or `InvalidInputError` naming the bad fields.

        A clean batch, one row or many, is packed straight from the parsed rows
        (`DictPacker.pack_if_clean`: the same arrays, one read; for one row as fast as the
        validator, and the validator is then never built on a cold start); any other goes
        through the contract's validator first, which names the bad fields.
        """
        packed = self._packer.pack_if_clean(rows, self._known, MAX_STRING)
        if packed is None:
            instances = validate_instances(self.adapter, rows, max_field_errors)
            require_values(instances)
            packed = self.pack_flags(instances)
        return packed

    def pack_columns_checked(self, columns: dict[str, list[Any]], max_field_errors: int) -> Packed:
        """A columnar batch (feature → one value per row) → `Packed`, or
        `InvalidInputError` naming the bad cells as ``inputs.<feature>[i]``.

        Unknown names and columns of another length are refused first (`column_rows`); a
        clean batch is packed column by column (`DictPacker.pack_columns_if_clean`), any
        other is turned into rows and goes through the validator, whose errors are renamed
        (`validate_columns`). Either way
        the arrays are those of the rows ``{feature: columns[feature][i]}``.
        """
        rows = column_rows(columns, self._known, max_field_errors)
        packed = self._packer.pack_columns_if_clean(columns, rows, MAX_STRING)
        if packed is not None:
            return packed
        return self.pack_flags(validate_columns(self.adapter, columns, max_field_errors))

    def row_warnings(self, packed: Packed, i: int) -> list[dict[str, str]]:
        """The notes of row `i` (the same as `pack` gives it; `InputWarnings`)."""
        return self._warnings.row_warnings(packed, i)

    def warning_summary(self, packed: Packed, rows_listed: int) -> list[dict[str, Any]]:
        """One entry per (feature, code) that any row triggered: how many rows, the
        first `rows_listed` row indices, and one message for all of them
        (`InputWarnings.warning_summary`)."""
        return self._warnings.warning_summary(packed, rows_listed)

    def run(self, numeric: np.ndarray, categorical: np.ndarray) -> Outputs:
        """One onnxruntime call for the whole batch: prediction, raw and (adaptive
        interval) scale.

        With ``batch_threads`` > 1 (``ESTATE_ORT_BATCH_THREADS``) a batch of at least
        `BATCH_SPLIT_ROWS` rows runs as that many row blocks at once on the same session
        (onnxruntime releases the GIL; rows are independent, so the answers are the same
        bits), for instances with a vCPU per thread.
        """
        parts = min(self.batch_threads, len(numeric) // BATCH_SPLIT_ROWS)
        if parts > 1:
            got = self._run_parts(numeric, categorical, parts)
        else:
            got = self.session.run(numeric, categorical, self._outputs)
        return Outputs(got[0], got[1], got[2] if len(got) > 2 else None)

    def _run_parts(
        self, numeric: np.ndarray, categorical: np.ndarray, parts: int
    ) -> list[np.ndarray]:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.batch_threads - 1, thread_name_prefix="ort")
        cuts = np.linspace(0, len(numeric), parts + 1).astype(int).tolist()
        blocks = [slice(a, b) for a, b in itertools.pairwise(cuts)]
        run, names = self.session.run, self._outputs
        futures = [self._pool.submit(run, numeric[b], categorical[b], names) for b in blocks[1:]]
        answers = [run(numeric[blocks[0]], categorical[blocks[0]], names)]
        answers += [f.result() for f in futures]
        return [np.concatenate([a[k] for a in answers]) for k in range(len(names))]

    def predict(self, instances: list[dict[str, Any]]) -> list[Prediction]:
        numeric, categorical, warnings = self.pack(instances)
        prediction, raw, scale = self.run(numeric, categorical)
        scales = [None] * len(warnings) if scale is None else scale.tolist()
        return [
            Prediction(float(p), float(r), w, s)
            for p, r, w, s in zip(prediction, raw, warnings, scales, strict=True)
        ]

    @property
    def no_comparables_reason(self) -> str | None:
        """Why this model gives no comparable sales (None when it does)."""
        if self.comparable_sales is not None:
            return None
        m = self.manifest
        if m.task != "regression":
            why = f"it is a {m.task.replace('_', ' ')} model: its data has no sale prices"
        elif m.comparables is None:
            why = (
                "its data-set config declares no [comparables] columns (or it was trained "
                "before bundles carried comparable sales); retrain with them to get some"
            )
        else:
            why = "its comparables table was not loaded"
        return f"{m.name}/{m.version} has no comparable sales: {why}."

    def comparables(
        self,
        numeric: np.ndarray,
        categorical: np.ndarray,
        k: int,
        missing_category: np.ndarray | None = None,
    ) -> list[list[dict[str, Any]]]:
        """The `k` most similar training sales of each packed row, nearest first, with
        price, sale date, distance and main differences (`estate.runtime.comparables`).

        Pass `Packed.missing_category` so categories a row did not send stay out of its
        distance, as missing numbers (NaN) do. Raises `NoComparablesError` (its message
        says why) when the bundle has none.
        """
        if self.comparable_sales is None:
            raise NoComparablesError(self.no_comparables_reason or "no comparable sales")
        return self.comparable_sales.nearest(numeric, categorical, k, missing_category)

    def interval(self, raw: float, scale: float | None) -> tuple[float, float] | None:
        """Conformal interval in target units (regression only; `estate.runtime.outputs`)."""
        bounds = intervals(
            np.array([raw]), self.manifest, None if scale is None else np.array([scale])
        )
        if bounds is None:
            return None
        return float(bounds[0, 0]), float(bounds[0, 1])


def _read_explainer(manifest: Manifest, data: bytes) -> Explainer:
    """The explainer, its module imported only by a process that explains."""
    from estate.runtime.explainer import Explainer

    return Explainer(manifest, data)


def model_info(model: ServingModel) -> dict[str, Any]:
    """The model identity every response carries."""
    m = model.manifest
    return {"name": m.name, "version": m.version}
