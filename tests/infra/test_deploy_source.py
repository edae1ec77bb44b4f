"""What gets deployed: the one source archive (Terraform) and the gcloud upload
(.gcloudignore) must both hold every module the entry points import, and the deploy
walk-throughs may only name Terraform outputs that exist."""

from __future__ import annotations

import ast
import fnmatch
import re
import subprocess
import sys
from pathlib import Path

import pytest
from terraform_config import REPO, Terraform, code_entry_points, load_terraform, names_in

LOCAL_PACKAGES = ("estate",)


@pytest.fixture(scope="module")
def tf() -> Terraform:
    return load_terraform()


def expand_braces(pattern: str) -> list[str]:
    """`{a,b}/x` → [a/x, b/x] (Terraform's fileset syntax; Path.glob has no braces)."""
    match = re.search(r"\{([^{}]*)\}", pattern)
    if not match:
        return [pattern]
    head, tail = pattern[: match.start()], pattern[match.end() :]
    return [p for alt in match.group(1).split(",") for p in expand_braces(head + alt + tail)]


def archive_files(tf: Terraform) -> set[str]:
    """The files Terraform's archive takes: its fileset() patterns plus the listed files."""
    expression = tf.locals["source_files"]
    files: set[str] = set()
    for pattern in re.findall(r'fileset\(local\.repo_root, "([^"]+)"\)', expression):
        for expanded in expand_braces(pattern):
            files |= {str(p.relative_to(REPO)) for p in REPO.glob(expanded) if p.is_file()}
    listed = re.search(r"toset\(\[(.*?)\]\)", expression)
    assert listed, "source_files lists no single files"
    files |= set(names_in(listed.group(1)))
    return files


def gcloud_upload(ignore_file: str = ".gcloudignore", root: Path = REPO) -> set[str]:
    """The files gcloud uploads from `root` under an ignore file (.gitignore syntax)."""
    patterns = [
        line.strip()
        for line in (root / ignore_file).read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    uploaded = set()
    for path in root.rglob("*"):
        rel = str(path.relative_to(root))
        parts = rel.split("/")
        if not path.is_file() or parts[0] in (".git", ".venv", ".venv-tools"):
            continue
        ignored = any(
            fnmatch.fnmatch(rel, p)
            or fnmatch.fnmatch(parts[-1], p)
            or (p.endswith("/") and p.rstrip("/") in parts[:-1])
            or (p.startswith("**/") and p[3:].rstrip("/") in parts[:-1])
            or any(
                fnmatch.fnmatch("/".join(parts[:i]), p.rstrip("/")) for i in range(1, len(parts))
            )
            for p in patterns
        )
        if not ignored:
            uploaded.add(rel)
    return uploaded


def imported_modules(files: set[str]) -> set[str]:
    """Local modules reachable from main.py through imports (lazy ones included)."""
    seen: set[str] = set()
    todo = ["main.py"]
    while todo:
        rel = todo.pop()
        if rel in seen:
            continue
        seen.add(rel)
        tree = ast.parse((REPO / rel).read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                if name.split(".")[0] not in LOCAL_PACKAGES:
                    continue
                base = REPO / name.replace(".", "/")
                for candidate in (base.with_suffix(".py"), base / "__init__.py"):
                    if candidate.exists():
                        todo.append(str(candidate.relative_to(REPO)))
                # Importing a submodule runs its package's __init__.py too.
                parts = name.split(".")
                for depth in range(1, len(parts)):
                    init = REPO.joinpath(*parts[:depth], "__init__.py")
                    if init.exists():
                        todo.append(str(init.relative_to(REPO)))
    return seen


def test_the_archive_holds_everything_main_py_imports(tf: Terraform) -> None:
    files = archive_files(tf)
    needed = imported_modules(files)
    assert {"main.py", "estate/serving/predict.py", "estate/contract/bundle.py"} <= needed
    assert needed <= files, f"missing from the source archive: {sorted(needed - files)}"
    for single in ("requirements.txt", "pyproject.toml", "README.md"):
        assert single in files
    assert any(f.startswith("configs/") for f in files)
    assert not any(f.startswith(("tests/", "data/", ".venv")) for f in files)
    # Every entry point is importable from what is shipped.
    main = (REPO / "main.py").read_text()
    for entry in code_entry_points():
        assert re.search(rf"\bimport {entry}\b|\bdef {entry}\b", main), entry


def test_the_gcloud_upload_holds_everything_main_py_imports(tf: Terraform) -> None:
    uploaded = gcloud_upload()
    needed = imported_modules(archive_files(tf))
    assert needed <= uploaded, f".gcloudignore drops {sorted(needed - uploaded)}"
    assert "requirements.txt" in uploaded
    assert not any(f.startswith(("tests/", "data/", ".venv", "bench/")) for f in uploaded)
    assert "Dockerfile" not in uploaded  # the training image is not a function


def test_the_build_workspace_holds_what_cloudbuild_yaml_uses() -> None:
    """`gcloud builds submit` also reads .gcloudignore, which drops tests and data: the
    README and cloudbuild.yaml point it at infra/cloudbuild.gcloudignore instead."""
    command = "gcloud builds submit --config cloudbuild.yaml --ignore-file="
    for doc in ("README.md", "cloudbuild.yaml"):
        assert f"{command}infra/cloudbuild.gcloudignore" in (REPO / doc).read_text(), doc
    workspace = gcloud_upload("infra/cloudbuild.gcloudignore")
    needed = {
        "Makefile",
        "pyproject.toml",
        ".ci/run",
        ".ci/system-deps",
        "examples/predict_ames.json",
    }
    needed |= {"Dockerfile", ".dockerignore"}  # the training image step
    needed |= {str(p.relative_to(REPO)) for p in (REPO / "tests").glob("*.py")}
    needed |= {str(p.relative_to(REPO)) for p in (REPO / "data").glob("*.csv*")}
    needed |= {str(p.relative_to(REPO)) for p in (REPO / "infra").glob("*.tf")}
    assert needed <= workspace, f"missing from the build: {sorted(needed - workspace)}"
    assert not any(f.startswith(("artifacts/", "infra/.terraform/")) for f in workspace)
    assert "infra/terraform.tfvars" not in workspace


@pytest.mark.parametrize("doc", ["README.md", "infra/README.md", "cloudbuild.yaml"])
def test_walkthroughs_name_only_existing_outputs(tf: Terraform, doc: str) -> None:
    text = (REPO / doc).read_text()
    named = set(re.findall(r"terraform -chdir=infra output (?:-raw |-json )?(\w+)", text))
    named |= set(re.findall(r"\btf (\w+)\)", text))  # the README's tf() shorthand
    if doc == "README.md":
        assert {"function_urls", "artifacts_uri", "cloudbuild_substitutions"} <= named
    assert named <= set(tf.outputs), f"{doc} names unknown outputs {named - set(tf.outputs)}"


def deploy_shell(doc: str) -> str:
    """The bash blocks of a deploy walk-through, joined in order."""
    text = (REPO / doc).read_text()
    if doc == "README.md":
        start = text.index("## Deploy to Google Cloud")
        text = text[start : text.index("\n## ", start + 1)]
    blocks = re.findall(r"```bash\n(.*?)```", text, re.DOTALL)
    assert blocks, f"{doc} has no bash blocks"
    return "\n".join(blocks)


@pytest.mark.parametrize("doc", ["README.md", "infra/README.md"])
def test_walkthrough_commands_are_valid_bash(doc: str, tmp_path: Path) -> None:
    path = tmp_path / "walkthrough.sh"
    path.write_text("#!/usr/bin/env bash\n" + deploy_shell(doc))
    syntax = subprocess.run(["bash", "-n", path], capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr
    shellcheck = Path(sys.executable).parent / "shellcheck"
    # SC2154: variables set in earlier steps or by the reader (PROJECT, GROQ_API_KEY, ...).
    lint = subprocess.run(
        [shellcheck, "--shell=bash", "--severity=warning", "--exclude=SC2154", path],
        capture_output=True,
        text=True,
    )
    assert lint.returncode == 0, lint.stdout
