"""Write the golden format-1 bundle in tests/support/bundles/v1/ (no make needed)::

    .venv/bin/python tests/support/bundles/regenerate_v1.py

It trains the tiny ridge-only Ames config of tests/conftest.py (`ridge_config`, ~2 s) into
a temporary store and keeps what serving reads: the serving pointer and the bundle's
model.onnx, manifest.json and explainer.npz (no data snapshot), in the store's own layout,
so tests open the folder as a `LocalStore`.

The files are a record of what format-1 code wrote; tests/unit/contract/test_bundle_compat.py
checks that today's readers still load and serve them. Regenerate only with code whose
`FORMAT_VERSION` is 1: a version bump adds a ``v2/`` next to this one and keeps ``v1/``.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
TARGET = HERE / "v1"
KEEP = ("model.onnx", "manifest.json", "explainer.npz")


def main() -> None:
    sys.path.insert(0, str(REPO / "tests"))
    from conftest import ridge_config  # the tiny config the test suite trains

    from estate.contract.bundle import FORMAT_VERSION, pointer_key, version_prefix
    from estate.training.config import load_config
    from estate.training.train import train

    if FORMAT_VERSION != 1:
        raise SystemExit(f"This code writes format {FORMAT_VERSION}; v1/ is a record of 1.")
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(ridge_config(Path(tmp), alpha=5.0))
        store = Path(tmp) / "store"
        manifest = train(config, config.data, str(store), quiet=True)
        if manifest.promotion is None or manifest.promotion.decision != "promote":
            raise SystemExit(f"The tiny model was not promoted: {manifest.promotion}")
        shutil.rmtree(TARGET, ignore_errors=True)
        prefix = version_prefix(manifest.name, manifest.version)
        for name in KEEP:
            (TARGET / prefix).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(store / prefix / name, TARGET / prefix / name)
        pointer = pointer_key(manifest.name)
        shutil.copyfile(store / pointer, TARGET / pointer)
    size = sum(p.stat().st_size for p in TARGET.rglob("*") if p.is_file())
    print(f"wrote {TARGET.relative_to(REPO)}: {manifest.name}/{manifest.version}, {size:,} bytes")


if __name__ == "__main__":
    main()
