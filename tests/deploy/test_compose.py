"""deploy/compose.yaml agrees with the fusion service's options and the TF Serving configuration."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from fusion_service.config import Settings, env_name
from tests.deploy.rendering import DEPLOY

COMPOSE_FILE = DEPLOY / "compose.yaml"
SERVICES = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
FUSION = SERVICES["fusion"]
WEB = SERVICES["web"]
MODEL_SERVERS = {name: s for name, s in SERVICES.items() if name not in ("fusion", "web")}


def flags(command: list[str]) -> dict[str, str]:
    return dict(a[2:].split("=", 1) for a in command if a.startswith("--"))


def mounted(service: dict, container_path: str) -> Path:
    """The host file (relative to compose.yaml) mounted at a container path."""
    for volume in service["volumes"]:
        host, target, *_ = volume.split(":")
        if target == container_path:
            return (COMPOSE_FILE.parent / host).resolve()
    raise AssertionError(f"nothing is mounted at {container_path}")


def test_host_ports_are_those_of_make_run():
    assert set(FUSION["ports"]) == {"50051:50051", "9464:9464"}
    assert WEB["ports"] == ["8080:8080"]
    assert SERVICES["model-audio"]["ports"] == ["8500:8500"]
    assert SERVICES["model-video"]["ports"] == ["8501:8500"]


def test_fusion_sets_only_options_the_service_knows():
    known = {env_name(f.name) for f in fields(Settings)}
    assert set(FUSION["environment"]) <= known


@pytest.mark.parametrize("modality", ["audio", "video"])
def test_fusion_reaches_each_model_server_by_name_on_its_grpc_port_and_model(modality):
    environment = FUSION["environment"]
    host, port = environment[f"FUSION_{modality.upper()}_MODEL_TARGET"].split(":")
    model_name = environment[f"FUSION_{modality.upper()}_MODEL_NAME"]
    server = MODEL_SERVERS[host]
    server_flags = flags(server["command"])
    assert server_flags["port"] == port
    models_config = mounted(server, server_flags["model_config_file"]).read_text()
    assert re.findall(r'\bname:\s*"([^"]+)"', models_config) == [model_name]
    assert server["build"]["args"]["MODEL_NAME"] == model_name
    assert FUSION["depends_on"][host] == {"condition": "service_healthy"}


@pytest.mark.parametrize("name", sorted(MODEL_SERVERS))
def test_model_server_threads_match_its_cpus(name):
    server = MODEL_SERVERS[name]
    server_flags = flags(server["command"])
    cpus = int(server["cpus"])
    assert int(server_flags["tensorflow_intra_op_parallelism"]) == cpus
    assert int(server_flags["tensorflow_inter_op_parallelism"]) == cpus
    batching = mounted(server, server_flags["batching_parameters_file"]).read_text()
    assert int(re.search(r"num_batch_threads\s*\{\s*value:\s*(\d+)", batching)[1]) == cpus
    assert mounted(server, server_flags["monitoring_config_file"]).is_file()
    assert server["init"] is True, "TF Serving as PID 1 ignores SIGTERM"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_containers_are_hardened_limited_and_built_from_deploy_images(name):
    service = SERVICES[name]
    assert service["read_only"] is True
    assert service["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in service["security_opt"]
    assert service["cpus"] and service["mem_limit"]
    assert (COMPOSE_FILE.parent / service["build"]["context"] / service["build"]["dockerfile"]).is_file()


def test_web_gateway_reaches_the_fusion_service_by_name_and_listens_where_it_is_published():
    assert WEB["environment"]["EMOTION_TARGET"] == "fusion:50051"
    assert WEB["environment"]["EMOTION_WEB_HOST"] == "0.0.0.0"  # inside its container: reachable through the port
    assert WEB["ports"] == [f"{WEB['environment']['EMOTION_WEB_PORT']}:8080"]
    assert "fusion" in WEB["depends_on"]
