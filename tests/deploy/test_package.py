"""The service as pip installs it: `pip install .[service]` alone gives a service whose default face detector
starts, because the face networks are package data and not another package's files."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.deploy.rendering import ROOT

# What deploy/images/fusion.Dockerfile copies into its build before `pip install ".[service]"`.
IMAGE_BUILD_CONTEXT = ("pyproject.toml", "README.md", "protos", "fusion_service")
MODELS = "fusion_service/features/faces/models/"


@pytest.fixture(scope="module")
def service_wheel(tmp_path_factory) -> Path:
    source, wheels = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheels")
    for name in IMAGE_BUILD_CONTEXT:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(wheels), str(source)], check=True, capture_output=True)
    (wheel,) = wheels.glob("emotion_fusion-*.whl")
    return wheel


def test_the_wheel_carries_the_face_networks_with_their_licence(service_wheel):
    names = set(zipfile.ZipFile(service_wheel).namelist())
    for network in sorted(path.name for path in (ROOT / MODELS).glob("*.tflite")):
        assert MODELS + network in names
    assert {MODELS + "LICENSE", MODELS + "NOTICE"} <= names


def test_the_installed_service_builds_its_default_face_detector_from_its_own_files(service_wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site),
                    str(service_wheel)], check=True, capture_output=True)
    probe = (
        "from fusion_service.features.faces.names import DEFAULT_DETECTOR\n"
        "from fusion_service.features.faces.pipeline import make_detector\n"
        "import fusion_service\n"
        "make_detector(DEFAULT_DETECTOR)\n"
        "print(fusion_service.__file__)\n"
    )
    # Run outside the checkout, with the installed copy first on the path (numpy and OpenCV from this venv).
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env={"PYTHONPATH": str(site)},
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).is_relative_to(site)
