"""Reading and writing bundles in a store, in the order that keeps readers safe.

Write order: ``model.onnx``, then ``manifest.json`` (which holds the model's sha256),
then the serving pointer. A reader that follows the pointer therefore only ever finds
complete bundles, and checks the checksum anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

from estate.contract.bundle import (
    FORMAT_VERSION,
    MANIFEST_FILE,
    MODEL_FILE,
    Manifest,
    model_prefix,
    parse_manifest,
    pointer_key,
    verify_card_bytes,
    verify_comparables_bytes,
    verify_explainer_bytes,
    verify_model_bytes,
    version_prefix,
)
from estate.contract.errors import BundleError, NotFoundError
from estate.storage.pointer import ServingPointer, promoted, read_pointer, update_pointer
from estate.storage.store import ArtifactStore


@dataclass(frozen=True)
class Bundle:
    """A verified bundle: its manifest and the model bytes whose checksum matched."""

    manifest: Manifest
    model_bytes: bytes
    explainer_bytes: bytes | None = None
    card_bytes: bytes | None = None
    comparables_bytes: bytes | None = None


def write_bundle(
    store: ArtifactStore,
    manifest: Manifest,
    model_bytes: bytes,
    explainer_bytes: bytes | None = None,
    card_bytes: bytes | None = None,
    comparables_bytes: bytes | None = None,
) -> str:
    """Write a new immutable version; returns its store prefix. Does not promote it.

    The side files (explainer, model card, comparables; when the manifest declares them) are written
    before the manifest, like the model, so a manifest never names a file that is not
    there yet."""
    if manifest.format_version != FORMAT_VERSION:
        raise BundleError(
            f"Refusing to write format version {manifest.format_version}: this code writes "
            f"version {FORMAT_VERSION}, and serving would refuse the bundle."
        )
    check_round_trip(manifest)
    verify_model_bytes(manifest, model_bytes)
    if (manifest.explainer is None) != (explainer_bytes is None):
        raise BundleError(
            "The manifest's explainer field and the explainer bytes must come together."
        )
    if explainer_bytes is not None:
        verify_explainer_bytes(manifest, explainer_bytes)
    if (manifest.model_card is None) != (card_bytes is None):
        raise BundleError("The manifest's model_card field and the card bytes must come together.")
    if card_bytes is not None:
        verify_card_bytes(manifest, card_bytes)
    if (manifest.comparables is None) != (comparables_bytes is None):
        raise BundleError(
            "The manifest's comparables field and the comparables bytes must come together."
        )
    if comparables_bytes is not None:
        verify_comparables_bytes(manifest, comparables_bytes)
    prefix = version_prefix(manifest.name, manifest.version)
    store.write_bytes(f"{prefix}/{MODEL_FILE}", model_bytes)
    if manifest.explainer is not None and explainer_bytes is not None:
        store.write_bytes(f"{prefix}/{manifest.explainer.file}", explainer_bytes)
    if manifest.model_card is not None and card_bytes is not None:
        store.write_bytes(f"{prefix}/{manifest.model_card.file}", card_bytes)
    if manifest.comparables is not None and comparables_bytes is not None:
        store.write_bytes(f"{prefix}/{manifest.comparables.file}", comparables_bytes)
    store.write_bytes(f"{prefix}/{MANIFEST_FILE}", manifest.to_json())
    return prefix


def check_round_trip(manifest: Manifest) -> None:
    """Refuse a manifest that would not read back as itself (checked before any write).

    JSON has no infinity or NaN: pydantic writes them as null, which then fails to parse
    or reads back as another value, so a bundle whose statistics overflowed would be
    written and never served."""
    try:
        parsed = parse_manifest(manifest.to_json())
    except BundleError as exc:
        raise BundleError(
            f"The manifest of {manifest.name}/{manifest.version} would not read back "
            f"({' '.join(str(exc).split())[:300]}); nothing was written. A statistic or "
            "metric is probably infinite or NaN: check the data for extreme values."
        ) from None
    changed = [
        name for name in Manifest.model_fields if getattr(parsed, name) != getattr(manifest, name)
    ]
    if changed:
        raise BundleError(
            f"The manifest of {manifest.name}/{manifest.version} reads back different in "
            f"{changed} (an infinite or NaN value becomes null in JSON); nothing was written. "
            "Check the data for extreme values."
        )


def promote(store: ArtifactStore, name: str, version: str) -> ServingPointer:
    """Point serving at `version` (which must be a complete bundle). Written last.

    A compare-and-swap (see `estate.storage.pointer`): the old champion is kept for
    rollback and a running canary ends.
    """
    return update_pointer(
        store,
        name,
        lambda current: promoted(current, version),
        check=lambda v: read_bundle(store, name, v),  # refuse a broken or missing bundle
    )


def serving_pointer(store: ArtifactStore, name: str) -> ServingPointer:
    """The pointer; `NotFoundError` if the model was never promoted."""
    pointer, _ = read_pointer(store, name)
    if pointer is None:
        raise NotFoundError(
            f"{store.uri}/{pointer_key(name)} does not exist: {name!r} was never promoted."
        )
    return pointer


def serving_version(store: ArtifactStore, name: str) -> str:
    """The version the pointer names; `NotFoundError` if the model was never promoted."""
    return serving_pointer(store, name).champion


def read_manifest(store: ArtifactStore, name: str, version: str) -> Manifest:
    return parse_manifest(store.read_bytes(f"{version_prefix(name, version)}/{MANIFEST_FILE}"))


def read_bundle(
    store: ArtifactStore, name: str, version: str | None = None, explainer: bool = True
) -> Bundle:
    """Load and verify a bundle (the serving version when `version` is None).

    `explainer` False leaves the explainer file unread (`read_explainer` reads and
    verifies it on first use): a process that only predicts does not fetch and checksum
    a file of several MB at every cold start.
    """
    version = version or serving_version(store, name)
    manifest = read_manifest(store, name, version)
    if manifest.name != name or manifest.version != version:
        raise BundleError(
            f"{version_prefix(name, version)}/{MANIFEST_FILE} describes "
            f"{manifest.name}/{manifest.version}: the bundle was copied to the wrong place."
        )
    try:
        model_bytes = store.read_bytes(f"{version_prefix(name, version)}/{MODEL_FILE}")
    except NotFoundError:
        raise BundleError(
            f"{version_prefix(name, version)} has a manifest but no {MODEL_FILE}: "
            "the bundle is incomplete. Re-export it."
        ) from None
    verify_model_bytes(manifest, model_bytes)
    explainer_bytes = card_bytes = comparables_bytes = None
    if explainer:
        explainer_bytes = read_explainer(store, manifest)
    if manifest.model_card is not None:
        card_bytes = _side_file(store, manifest, manifest.model_card.file)
        verify_card_bytes(manifest, card_bytes)
    if manifest.comparables is not None:
        comparables_bytes = _side_file(store, manifest, manifest.comparables.file)
        verify_comparables_bytes(manifest, comparables_bytes)
    return Bundle(
        manifest=manifest,
        model_bytes=model_bytes,
        explainer_bytes=explainer_bytes,
        card_bytes=card_bytes,
        comparables_bytes=comparables_bytes,
    )


def read_explainer(store: ArtifactStore, manifest: Manifest) -> bytes | None:
    """The bundle's explainer file, verified against its manifest (None: it has none)."""
    if manifest.explainer is None:
        return None
    data = _side_file(store, manifest, manifest.explainer.file)
    verify_explainer_bytes(manifest, data)
    return data


def _side_file(store: ArtifactStore, manifest: Manifest, file: str) -> bytes:
    """A file the manifest declares; `BundleError` when it is missing."""
    prefix = version_prefix(manifest.name, manifest.version)
    try:
        return store.read_bytes(f"{prefix}/{file}")
    except NotFoundError:
        raise BundleError(
            f"{prefix} declares {file} but the file is missing: the bundle is incomplete. "
            "Re-export it."
        ) from None


def list_versions(store: ArtifactStore, name: str) -> list[str]:
    """Every version of `name` that has a manifest, oldest first."""
    suffix = "/" + MANIFEST_FILE
    prefix = model_prefix(name) + "/"
    return sorted(
        key[len(prefix) : -len(suffix)]
        for key in store.list(model_prefix(name))
        if key.endswith(suffix) and key.count("/") == prefix.count("/") + 1
    )
