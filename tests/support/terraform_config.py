"""Read infra/*.tf (python-hcl2) and what the code says must be deployed, for the infra tests.

Terraform cannot `init` offline (no providers), so the wiring is checked on the parsed
HCL: blocks become plain dicts, string literals lose their HCL quotes, expressions stay
as "${...}" text.
"""

from __future__ import annotations

import ast
import importlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2

from estate.serving.function_settings import FUNCTION_SETTINGS, RetrainSettings

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
#: The functions that answer HTTP (retrain answers CloudEvents).
HTTP_FUNCTIONS = ("predict", "explain", "chat", "analyze")

# Settings that the cloud deployment must set explicitly: the defaults (./artifacts, the
# demo model) only make sense on a laptop. Fields without any default are added below.
CLOUD_REQUIRED = {"artifacts", "model_name"}


def clean(value: Any) -> Any:
    """hcl2's output without its markers: quotes off keys and literals, no __is_block__."""
    if isinstance(value, dict):
        return {
            _unquote(k): clean(v)
            for k, v in value.items()
            if k not in ("__is_block__", "__comments__")
        }
    if isinstance(value, list):
        return [clean(v) for v in value]
    if isinstance(value, str):
        return _unquote(value)
    return value


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    return text


@dataclass
class Terraform:
    """Every block of infra/*.tf, keyed the way Terraform addresses them."""

    resources: dict[str, dict[str, Any]] = field(default_factory=dict)  # "type.name" → body
    data: dict[str, dict[str, Any]] = field(default_factory=dict)
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    locals: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # file name → raw text

    def resource(self, address: str) -> dict[str, Any]:
        assert address in self.resources, f"infra/ has no resource {address}"
        return self.resources[address]

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        return {a: b for a, b in self.resources.items() if a.split(".")[0] == kind}


def load_terraform(folder: Path = INFRA) -> Terraform:
    """Parse every .tf file of `folder` (fails on the first one python-hcl2 rejects)."""
    tf = Terraform()
    for path in sorted(folder.glob("*.tf")):
        text = path.read_text()
        tf.files[path.name] = text
        parsed = clean(hcl2.loads(text))
        for block in parsed.get("resource", []):
            for kind, named in block.items():
                for name, body in named.items():
                    tf.resources[f"{kind}.{name}"] = body
        for block in parsed.get("data", []):
            for kind, named in block.items():
                for name, body in named.items():
                    tf.data[f"{kind}.{name}"] = body
        for block in parsed.get("variable", []):
            tf.variables.update(block)
        for block in parsed.get("output", []):
            tf.outputs.update(block)
        for block in parsed.get("locals", []):
            tf.locals.update(block)
    return tf


def names_in(expression: str) -> list[str]:
    """The quoted names of an HCL list/set expression, e.g. toset(["a", "b"]) → [a, b]."""
    return re.findall(r'"([^"]+)"', expression)


def code_entry_points(main: Path = REPO / "main.py") -> set[str]:
    """Function names main.py exports (its __all__), read with ast: nothing is imported."""
    tree = ast.parse(main.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            value = ast.literal_eval(node.value)
            return set(value)
    raise AssertionError("main.py defines no __all__ listing its entry points")


def settings_env() -> dict[str, bool]:
    """ESTATE_* variable of every function's settings → whether the cloud must set it."""
    return {
        f"{cls.env_prefix}{name}".upper(): name in CLOUD_REQUIRED or info.is_required()
        for cls in FUNCTION_SETTINGS
        for name, info in cls.model_fields.items()
    }


def retrain_required() -> list[set[str]]:
    """Settings the retrain function cannot run without, each as a set of alternatives.

    Read from the code: estate.serving.retrain.missing_settings on empty settings.
    """
    retrain = importlib.import_module("estate.serving.retrain")
    missing = retrain.missing_settings(RetrainSettings())
    return [set(re.findall(r"ESTATE_[A-Z_]+", item)) for item in missing]
