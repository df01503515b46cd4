"""The container images: what they install, as whom they run, how they report health."""

from __future__ import annotations

import json
import re
import shlex
import tomllib

import pytest
from dockerfile_parse import DockerfileParser

from tests.deploy.rendering import DEPLOY, ROOT, container, model_servers, named, pod_spec, render

FUSION = DEPLOY / "images" / "fusion.Dockerfile"
MODEL_SERVER = DEPLOY / "images" / "model-server.Dockerfile"
WEB = DEPLOY / "images" / "web.Dockerfile"
RUNTIME_VENV = "/opt/venv"


def stages(dockerfile) -> list[list[dict]]:
    """Instructions per build stage, in order (comments dropped)."""
    result: list[list[dict]] = []
    for instruction in DockerfileParser(str(dockerfile)).structure:
        if instruction["instruction"] == "FROM":
            result.append([])
        if result and instruction["instruction"] != "COMMENT":
            result[-1].append(instruction)
    return result


def values(stage: list[dict], instruction: str) -> list[str]:
    return [i["value"] for i in stage if i["instruction"] == instruction]


def shell_commands(run: str) -> list[list[str]]:
    return [shlex.split(part) for part in run.split("&&")]


def pip_installs(stage: list[dict]) -> dict[str, list[str]]:
    """Packages each `<venv>/bin/pip install` of the stage installs, by virtual environment."""
    installs: dict[str, list[str]] = {}
    for run in values(stage, "RUN"):
        for command in shell_commands(run):
            if len(command) > 2 and command[0].endswith("/bin/pip") and command[1] == "install":
                venv = command[0].removesuffix("/bin/pip")
                installs.setdefault(venv, []).extend(a for a in command[2:] if not a.startswith("-"))
    return installs


def copies_from_build(stage: list[dict]) -> list[tuple[str, str]]:
    pairs = []
    for value in values(stage, "COPY"):
        words = value.split()
        if words[0].startswith("--from="):
            pairs.append((words[1], words[2]))
    return pairs


def healthcheck_command(stage: list[dict]) -> list[str]:
    (value,) = values(stage, "HEALTHCHECK")
    return json.loads(value.split("CMD", 1)[1])


def user(stage: list[dict]) -> tuple[int, int]:
    uid, gid = values(stage, "USER")[-1].split(":")
    return int(uid), int(gid)


def test_fusion_image_installs_exactly_the_service_extra_of_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["dependencies"] == [], "the image installs the project: its base dependencies would come along"
    assert project["optional-dependencies"]["service"], "pyproject.toml has no `service` extra"
    *build_stages, runtime = stages(FUSION)
    assert copies_from_build(runtime) == [(RUNTIME_VENV, RUNTIME_VENV)], "only the service's environment ships"
    installs = {venv: packages for stage in build_stages for venv, packages in pip_installs(stage).items()}
    assert installs[RUNTIME_VENV] == [".[service]"]


def test_web_image_installs_exactly_the_gateway_extra_and_no_opencv_or_tensorflow():
    *build_stages, runtime = stages(WEB)
    assert copies_from_build(runtime) == [(RUNTIME_VENV, RUNTIME_VENV)]
    installs = {venv: packages for stage in build_stages for venv, packages in pip_installs(stage).items()}
    assert installs[RUNTIME_VENV] == [".[gateway]"]
    gateway = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["gateway"]
    names = {re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].lower() for requirement in gateway}
    assert "aiohttp" in names
    assert not names & {"tensorflow", "tensorflow-cpu", "opencv-python-headless", "grpcio-tools"}
    web = pod_spec(named(render("prod"), "Deployment", "web"))["securityContext"]
    assert user(runtime) == (web["runAsUser"], web["runAsGroup"]) != (0, 0)


def test_fusion_image_carries_no_tensorflow_and_no_stub_generator():
    service = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["service"]
    names = {re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].lower() for requirement in service}
    assert not names & {"tensorflow", "tensorflow-cpu", "tensorflow-serving-api", "grpcio-tools", "keras"}
    *_, runtime = stages(FUSION)
    assert not pip_installs(runtime), "the final stage installs nothing itself"
    assert all("pip" not in run for run in values(runtime, "RUN"))


def test_images_run_as_the_non_root_user_the_manifests_expect():
    objects = render("prod")
    fusion = pod_spec(named(objects, "Deployment", "fusion"))["securityContext"]
    assert user(stages(FUSION)[-1]) == (fusion["runAsUser"], fusion["runAsGroup"]) != (0, 0)
    for server in model_servers(objects):
        context = pod_spec(server)["securityContext"]
        assert user(stages(MODEL_SERVER)[-1]) == (context["runAsUser"], context["runAsGroup"])


def test_fusion_image_health_check_runs_the_health_check_client_it_carries():
    *_, runtime = stages(FUSION)
    command = healthcheck_command(runtime)
    assert command[0] == "python"
    assert f"deploy/images/healthcheck.py {command[1]}" in values(runtime, "COPY")
    tls_probe = container(named(render("prod-tls"), "Deployment", "fusion"), "fusion")["readinessProbe"]["exec"]
    assert tls_probe["command"][:2] == command[:2], "the TLS readiness probe runs the same client"


def test_model_server_image_bakes_one_model_version_into_a_pinned_tf_serving():
    structure = DockerfileParser(str(MODEL_SERVER)).structure
    (base,) = [i["value"] for i in structure if i["instruction"] == "FROM"]
    assert base == "tensorflow/serving:${TF_SERVING_VERSION}"
    first_argument = next(i["value"] for i in structure if i["instruction"] == "ARG")
    assert re.fullmatch(r"TF_SERVING_VERSION=\d+\.\d+\.\d+", first_argument), "pin a TF Serving release"
    (runtime,) = stages(MODEL_SERVER)
    assert "model_repository/${MODEL_NAME}/${MODEL_VERSION}/ /models/${MODEL_NAME}/${MODEL_VERSION}/" in values(
        runtime, "COPY"
    )
    command = healthcheck_command(runtime)
    assert command[:2] == ["bash", "-c"] and "/v1/models/%s/metadata" in command[2]


@pytest.mark.parametrize("dockerfile", [FUSION, MODEL_SERVER, WEB], ids=lambda p: p.name)
def test_build_context_admits_what_the_image_copies_and_nothing_private(dockerfile):
    patterns = [
        line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", ".dockerignore starts by excluding everything"
    admitted = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    for stage in stages(dockerfile):
        for value in values(stage, "COPY"):
            if value.startswith("--from="):
                continue
            *sources, _destination = value.split()
            for source in sources:
                assert any(source == a or source.startswith(a + "/") for a in admitted), source
    assert not admitted & {".venv", ".venv-ml", ".git", "tests", "training", "bench"}
