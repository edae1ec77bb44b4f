"""``estate models``: every version of a model, its metrics, gate verdict and role."""

from __future__ import annotations

import argparse
import json
from typing import Any

from estate.cli.commands._pointer_args import add_model_arguments, describe
from estate.contract.bundle import Manifest
from estate.contract.errors import BundleError
from estate.storage.pointer import ServingPointer, read_pointer
from estate.storage.registry import list_versions, read_manifest
from estate.storage.store import open_store


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "models",
        help="list versions with metrics, gate decisions and which one serves",
        description="List every version of a model in the store, oldest first: holdout "
        "selection metric of the chosen candidate, the training gate decision, and its role "
        "(champion, canary, rollback target).",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_model_arguments(parser)
    parser.set_defaults(func=run)


def role(version: str, pointer: ServingPointer | None) -> str:
    if pointer is None:
        return ""
    if version == pointer.champion:
        return "champion"
    if pointer.canary and version == pointer.canary.version:
        return f"canary {pointer.canary.percent:g}%"
    if pointer.previous and version == pointer.previous[-1]:
        return "rollback target"
    return "previous champion" if version in pointer.previous else ""


def row(manifest: Manifest, pointer: ServingPointer | None) -> dict[str, Any]:
    chosen = next(c for c in manifest.candidates if c.name == manifest.chosen)
    metric = manifest.selection_metric
    verdict = manifest.promotion
    return {
        "version": manifest.version,
        "created_at": manifest.created_at.isoformat(timespec="seconds"),
        "chosen": manifest.chosen,
        "metric": metric,
        "holdout": chosen.holdout_metrics.get(metric),
        "cv": chosen.cv_metrics.get(metric),
        "gates": verdict.decision if verdict else "unknown",
        "reason": verdict.reason if verdict else "",
        "role": role(manifest.version, pointer),
    }


def run(args: argparse.Namespace) -> int:
    store = open_store(args.store)
    pointer, _ = read_pointer(store, args.model)
    rows = []
    for version in list_versions(store, args.model):
        try:
            rows.append(row(read_manifest(store, args.model, version), pointer))
        except BundleError as exc:
            rows.append({"version": version, "role": role(version, pointer), "error": str(exc)})
    if args.json:
        print(
            json.dumps(
                {"pointer": pointer.model_dump(mode="json") if pointer else None, "versions": rows},
                indent=2,
            )
        )
        return 0
    if not rows:
        print(f"no versions of {args.model!r} in {store.uri}")
        return 0
    print(f"{'version':<26} {'created (UTC)':<20} {'chosen':<14} {'holdout':>9} {'gates':<8} role")
    for r in rows:
        if "error" in r:
            print(f"{r['version']:<26} unreadable: {r['error']}")
            continue
        score = f"{r['holdout']:.4g}" if r["holdout"] is not None else "-"
        print(
            f"{r['version']:<26} {r['created_at'][:19]:<20} {r['chosen']:<14} {score:>9} "
            f"{r['gates']:<8} {r['role']}"
        )
    metric = next((r["metric"] for r in rows if "metric" in r), "")
    print(
        f"holdout = the chosen candidate's {metric}; "
        + (describe(pointer) if pointer else "nothing promoted yet")
    )
    if pointer is not None:
        changed = pointer.updated_at.isoformat(timespec="seconds")
        print(f"pointer last changed {changed}: {pointer.note or 'promoted'}")
    return 0
