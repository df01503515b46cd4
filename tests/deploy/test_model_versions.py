"""Every deployment serves the model versions in model_repository/ that the learned fusion was fitted for: a
model image of another version would be fused with coefficients fitted for a different model."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from fusion_service.fusion import LEARNED_FUSION_FILE
from tests.deploy.rendering import DEPLOY

REPOSITORY = Path(__file__).resolve().parents[2] / "model_repository"
FITTED_FOR = json.loads(LEARNED_FUSION_FILE.read_text())["fitted_for"]
MODELS = ("audio", "video")
OVERLAYS = sorted(path.parent for path in (DEPLOY / "k8s" / "overlays").glob("*/kustomization.yaml"))


def fitted_version(model: str) -> int:
    return int(FITTED_FOR[f"{model}_model_version"])


@pytest.mark.parametrize("model", MODELS)
def test_the_learned_fusion_was_fitted_for_a_version_in_the_repository(model):
    assert (REPOSITORY / model / str(fitted_version(model)) / "saved_model.pb").is_file()


@pytest.mark.parametrize("model", MODELS)
def test_compose_bakes_that_version_by_default(model):
    service = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"][f"model-{model}"]
    variable = f"{model.upper()}_MODEL_VERSION"
    for text in (service["image"], service["build"]["args"]["MODEL_VERSION"]):
        (default,) = re.findall(r"\$\{" + variable + r":-(\d+)\}", text)
        assert int(default) == fitted_version(model), text


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda path: path.name)
@pytest.mark.parametrize("model", MODELS)
def test_every_overlay_that_sets_a_model_image_tags_it_with_that_version(overlay, model):
    kustomization = yaml.safe_load((overlay / "kustomization.yaml").read_text())
    images = kustomization.get("images", [])
    tags = [image["newTag"] for image in images if image["name"] == f"emotion-model-{model}" and "newTag" in image]
    assert all(int(tag) == fitted_version(model) for tag in tags), tags
    if "../../base" in kustomization.get("resources", []):  # not an overlay of another overlay
        assert tags, f"{overlay.name} builds on the base and must pin the {model} model image's version"
