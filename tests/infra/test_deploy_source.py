"""What gets deployed: each function's source archive (Terraform) and the gcloud upload
(.gcloudignore) must both hold every module the entry points import, and nothing of
the layers the functions never import; each function's requirements must install what
its entry point imports, and nothing another function needs; the deploy walk-throughs
may only name Terraform outputs that exist."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import grimp
import pytest
from terraform_config import REPO, Terraform, code_entry_points, load_terraform, names_in

#: Layers of estate/ that no function imports: they must not ship.
NOT_SHIPPED = ("training", "batch", "ops", "export", "cli")


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
    # Each function's archive adds its own requirements file as requirements.txt.
    storage = (REPO / "infra" / "storage.tf").read_text()
    own = re.search(
        r'content\s*=\s*file\("\$\{local\.repo_root\}/requirements/\$\{each\.key\}\.txt"\)'
        r'\s*filename\s*=\s*"requirements\.txt"',
        storage,
    )
    assert own, "the source archive does not add requirements/<function>.txt as requirements.txt"
    return files | {"requirements.txt"}


def gcloud_upload(ignore_file: str = ".gcloudignore", root: Path = REPO) -> set[str]:
    """The files gcloud uploads from `root` under an ignore file.

    gcloud "very closely mimics" .gitignore (its gcloudignore.py), last match winning
    and a file under an ignored folder staying ignored, so git itself decides, in an
    empty repository whose .gitignore is the ignore file.
    """
    candidates = [
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file()
        and path.relative_to(root).parts[0] not in (".git", ".venv", ".venv-tools")
    ]
    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run(["git", "init", "-q", scratch], check=True)
        (Path(scratch) / ".gitignore").write_bytes((root / ignore_file).read_bytes())
        out = subprocess.run(
            ["git", "check-ignore", "--no-index", "--stdin", "-z", "-v", "-n"],
            cwd=scratch,
            input="\0".join(candidates) + "\0",
            capture_output=True,
            text=True,
        )
    assert out.returncode in (0, 1), out.stderr
    fields = out.stdout.split("\0")
    # -z -v: source, line, pattern, path for every path; no pattern = not matched
    records = [fields[i : i + 4] for i in range(0, len(fields) - 1, 4)]
    assert {r[3] for r in records} == set(candidates)
    return {path for _, _, pattern, path in records if not pattern or pattern.startswith("!")}


def entry_modules() -> dict[str, str]:
    """main.py's entry point → module table (a literal, read without importing main)."""
    tree = ast.parse((REPO / "main.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "ENTRY_MODULES" for t in node.targets
        ):
            table: dict[str, str] = ast.literal_eval(node.value)
            return table
    raise AssertionError("main.py has no ENTRY_MODULES table")


def main_imports() -> set[str]:
    """The modules main.py imports itself (at the top: the body guard)."""
    tree = ast.parse((REPO / "main.py").read_text())
    names = {n.module for n in tree.body if isinstance(n, ast.ImportFrom) and n.module}
    names |= {a.name for n in tree.body if isinstance(n, ast.Import) for a in n.names}
    return {n for n in names if n.split(".")[0] == "estate"}


def imported_files(entry_points: list[str] | None = None) -> set[str]:
    """main.py plus every file of estate/ that its entry points (default: all) can import,
    lazy imports included (grimp reads imports inside functions too), with their
    packages' __init__."""
    graph = grimp.build_graph("estate", cache_dir=None)
    table = entry_modules()
    modules = main_imports() | {table[e] for e in (entry_points or list(table))}
    for module in list(modules):
        modules |= graph.find_upstream_modules(module)
    modules |= {m.rsplit(".", i)[0] for m in modules for i in range(1, m.count(".") + 1)}
    files = {"main.py"}
    for module in modules:
        base = REPO / module.replace(".", "/")
        package = base / "__init__.py"
        files.add(str((package if package.exists() else base.with_suffix(".py")).relative_to(REPO)))
    return files


def test_main_py_builds_every_deployed_entry_point() -> None:
    table = entry_modules()
    assert set(table) == code_entry_points()  # main.py's __all__, which infra deploys
    for module in table.values():
        path = REPO / module.replace(".", "/")
        source = (
            path.with_suffix(".py") if path.with_suffix(".py").exists() else path / "__init__.py"
        )
        assert "\ndef entry_point(" in source.read_text(), module


def test_the_entry_points_import_only_what_ships() -> None:
    needed = imported_files()
    assert {"main.py", "estate/serving/predict.py", "estate/contract/bundle.py"} <= needed
    assert {"estate/serving/chat/advisor/engine.py", "estate/serving/jobs.py"} <= needed
    layers = {f.split("/")[1] for f in needed if f.startswith("estate/") and f.count("/") > 1}
    assert layers == {"contract", "storage", "runtime", "serving"}


def test_the_archive_holds_everything_the_entry_points_import(tf: Terraform) -> None:
    files = archive_files(tf)
    needed = imported_files()
    assert needed <= files, f"missing from the source archive: {sorted(needed - files)}"
    for single in ("requirements.txt", "pyproject.toml", "README.md"):
        assert single in files
    assert not any(f.startswith(tuple(f"estate/{layer}/" for layer in NOT_SHIPPED)) for f in files)
    assert not any(f.startswith(("tests/", "data/", "configs/", "bench/", ".venv")) for f in files)


def test_the_gcloud_upload_holds_everything_the_entry_points_import(tf: Terraform) -> None:
    uploaded = gcloud_upload()
    needed = imported_files()
    assert needed <= uploaded, f".gcloudignore drops {sorted(needed - uploaded)}"
    assert uploaded == archive_files(tf)  # the two ways to deploy ship the same files
    assert not any("__pycache__" in f or f.endswith(".pyc") for f in uploaded)


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


#: Third-party module (longest prefix wins) → the requirements that install it: its own
#: distribution, or any that depends on it (google-api-core comes with every client).
_GOOGLE_CLIENTS = {"google-cloud-storage", "google-cloud-aiplatform", "google-cloud-secret-manager"}
PROVIDED_BY: dict[str, set[str]] = {
    "numpy": {"numpy"},
    "onnxruntime": {"onnxruntime"},
    "pydantic": {"pydantic"},
    "pydantic_core": {"pydantic"},
    "typing_extensions": {"pydantic"},
    "functions_framework": {"functions-framework"},
    "flask": {"functions-framework"},
    "werkzeug": {"functions-framework"},
    "cloudevents": {"functions-framework"},
    "google.cloud.storage": {"google-cloud-storage"},
    "google.cloud.aiplatform_v1": {"google-cloud-aiplatform"},
    "google.cloud.aiplatform": {"google-cloud-aiplatform"},
    "google.cloud.secretmanager": {"google-cloud-secret-manager"},
    "google_crc32c": {"google-cloud-storage", "google-cloud-secret-manager"},
    "google.api_core": _GOOGLE_CLIENTS,
    "google.auth": _GOOGLE_CLIENTS,
}


def third_party_imports(files: set[str]) -> set[str]:
    """Every non-stdlib, non-estate module `files` import: at the top, inside functions,
    and by name through ``importlib.import_module("...")``."""
    found: set[str] = set()
    for name in files:
        for node in ast.walk(ast.parse((REPO / name).read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module)
                found |= {f"{node.module}.{a.name}" for a in node.names}
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "import_module"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                found.add(node.args[0].value)
    top = {"estate", "__future__", *sys.stdlib_module_names}
    return {m for m in found if m.split(".")[0] not in top}


def requirement_names(function: str) -> set[str]:
    lines = (REPO / "requirements" / f"{function}.txt").read_text().splitlines()
    names = {re.split(r"[<>=!~\[; ]", line.strip(), maxsplit=1)[0] for line in lines}
    return {n.lower() for n in names if n and not n.startswith("#")}


def needs(module: str) -> set[str] | None:
    """The requirements that can provide `module` (None: a namespace like google.cloud,
    or a name of a package already provided, such as ``numpy.typing``)."""
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        provided = PROVIDED_BY.get(".".join(parts[:i]))
        if provided is not None:
            return provided
    return None


@pytest.mark.parametrize("function", sorted(code_entry_points()))
def test_each_functions_requirements_install_what_it_imports_and_no_more(function: str) -> None:
    listed = requirement_names(function)
    imported = third_party_imports(imported_files([function]))
    unknown = {m for m in imported if needs(m) is None and m not in ("google", "google.cloud")}
    assert not unknown, f"add these modules to PROVIDED_BY: {sorted(unknown)}"
    missing = {m for m in imported if (n := needs(m)) is not None and not n & listed}
    assert not missing, f"requirements/{function}.txt installs nothing providing {missing}"
    used = {d for m in imported if (n := needs(m)) is not None for d in n & listed}
    assert listed == used, f"requirements/{function}.txt lists unused {listed - used}"


def test_predict_and_explain_install_neither_vertex_ai_nor_secret_manager() -> None:
    for function in ("predict", "explain"):
        listed = requirement_names(function)
        assert not listed & {"google-cloud-aiplatform", "google-cloud-secret-manager"}
    assert "google-cloud-aiplatform" in requirement_names("retrain")
    assert "google-cloud-secret-manager" in requirement_names("chat")
    for function in sorted(code_entry_points()):  # every deploy step copies its own file
        assert f"cp requirements/{function}.txt" in (REPO / "cloudbuild.yaml").read_text()
