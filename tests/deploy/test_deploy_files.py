"""The deployment files parse, set only documented variables and name the same code location.

Docker and Kubernetes are not available where the tests run: these checks are cheap, but they
catch a renamed variable, module or version before a cluster does.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.assets import WAREHOUSE_POOL

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
YAML_FILES = sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])
VARIABLE = re.compile(r"\bHOOP_[A-Z0-9_]+\b")


def documented_variables() -> set[str]:
    """The variables of the README's configuration table (its first column)."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("### Configuration", 1)[1].split("\n#", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    names = {name for row in rows for name in VARIABLE.findall(row.split("|")[1])}
    assert "HOOP_API_TOKEN" in names and "HOOP_BACKFILL_DAYS_PER_RUN" in names
    return names


def variables_set(node: Any) -> Iterator[str]:
    """Every HOOP_* variable a YAML document sets: `- name: HOOP_X` entries of an env list, and
    HOOP_X keys of a mapping (a Secret's stringData, a chart's env map)."""
    if isinstance(node, dict):
        name = node.get("name")
        if (
            isinstance(name, str)
            and name.startswith("HOOP_")
            and ("value" in node or "valueFrom" in node)
        ):
            yield name
        for key, value in node.items():
            if isinstance(key, str) and key.startswith("HOOP_"):
                yield key
            yield from variables_set(value)
    elif isinstance(node, list):
        for item in node:
            yield from variables_set(item)


def load(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def test_there_are_deployment_files_to_check() -> None:
    names = {p.relative_to(DEPLOY).as_posix() for p in YAML_FILES}
    assert {"kubernetes/values.yaml", "kubernetes/secret.example.yaml"} <= names


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: p.relative_to(DEPLOY).as_posix())
def test_every_yaml_file_parses_and_sets_only_variables_the_readme_documents(path: Path) -> None:
    docs = load(path)
    assert docs, f"{path} holds no document"
    unknown = {name for doc in docs for name in variables_set(doc)} - documented_variables()
    assert not unknown, (
        f"{path.name} sets variables the README does not document: {sorted(unknown)}"
    )


def values() -> dict[str, Any]:
    (doc,) = load(DEPLOY / "kubernetes" / "values.yaml")
    assert isinstance(doc, dict)
    return doc


def the_deployment() -> dict[str, Any]:
    (deployment,) = values()["dagster-user-deployments"]["deployments"]
    assert isinstance(deployment, dict)
    return deployment


def test_the_chart_values_set_the_variables_a_cluster_needs() -> None:
    env = {e["name"]: e.get("value") for e in the_deployment()["env"]}
    assert str(env["HOOP_DATA_DIR"]).startswith("s3://")  # a pod's disk ends with the pod
    assert int(env["HOOP_BACKFILL_DAYS_PER_RUN"]) > 0
    assert "HOOP_API_TOKEN" not in env  # from the Secret only
    (secret,) = load(DEPLOY / "kubernetes" / "secret.example.yaml")
    assert {s["name"] for s in the_deployment()["envSecrets"]} == {secret["metadata"]["name"]}
    assert "HOOP_API_TOKEN" in secret["stringData"]
    assert values()["runLauncher"]["type"] == "K8sRunLauncher"
    assert values()["concurrency"]["pools"] == {"defaultLimit": 1, "granularity": "op"}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(instruction, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = (REPO / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = "\n".join(lines).replace("\\\n", " ")
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
        for line in joined.splitlines()
        if line.strip()
    ]


def test_the_image_the_chart_and_the_workspace_serve_the_same_code_location() -> None:
    workspace = yaml.safe_load((REPO / "workspace.yaml").read_text())
    module = workspace["load_from"][0]["python_module"]["module_name"]
    assert importlib.util.find_spec(module) is not None
    args = the_deployment()["dagsterApiGrpcArgs"]
    assert args[args.index("-m") + 1] == module
    (cmd,) = [
        arguments for instruction, arguments in dockerfile_instructions() if instruction == "CMD"
    ]
    command = yaml.safe_load(cmd)  # the exec form is a JSON list
    assert command[:3] == ["dagster", "api", "grpc"]
    assert command[command.index("-m") + 1] == module
    assert command[command.index("-p") + 1] == str(the_deployment()["port"])


def test_the_image_installs_from_the_lock_without_dev_tools_and_runs_as_a_user_not_root() -> None:
    instructions = dockerfile_instructions()
    runs = " ".join(arguments for instruction, arguments in instructions if instruction == "RUN")
    assert "uv sync --frozen --no-dev" in runs
    assert " --dev" not in runs.replace("--no-dev", "")
    users = [arguments for instruction, arguments in instructions if instruction == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    bases = [arguments for instruction, arguments in instructions if instruction == "FROM"]
    assert bases[-1].startswith("python:${PYTHON_VERSION}-slim")


def build_arg(name: str) -> str:
    for instruction, arguments in dockerfile_instructions():
        if instruction == "ARG" and arguments.startswith(f"{name}="):
            return arguments.split("=", 1)[1]
    raise AssertionError(f"the Dockerfile has no ARG {name}")


def locked_version(package: str) -> str:
    lock = (REPO / "uv.lock").read_text()
    found = re.search(
        rf'\n\[\[package\]\]\nname = "{re.escape(package)}"\nversion = "([^"]+)"', lock
    )
    assert found, package
    return found.group(1)


def test_the_image_pins_tools_that_match_the_makefile_and_the_lock() -> None:
    assert build_arg("PYTHON_VERSION") == "3.12"
    makefile = (REPO / "Makefile").read_text()
    assert f"UV_VERSION := {build_arg('UV_VERSION')}" in makefile
    # dagster 1.M.P is released with its libraries (dagster-k8s, dagster-postgres) 0.(M+16).P.
    major, minor, patch = locked_version("dagster").split(".")[:3]
    assert major == "1"
    assert build_arg("DAGSTER_LIBRARIES_VERSION") == f"0.{int(minor) + 16}.{patch}"


def test_the_readme_of_deploy_says_what_was_tested_and_limits_the_pool_the_code_uses() -> None:
    text = (DEPLOY / "README.md").read_text()
    assert "## What was tested, and what was only written" in text
    limits = re.findall(r"dagster instance concurrency set (\S+) (\S+)", text)
    assert limits and set(limits) == {(WAREHOUSE_POOL, "1")}
