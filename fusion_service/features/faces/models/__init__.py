"""MediaPipe's face networks (Apache 2.0, see NOTICE), shipped with the service as package data: installing
the service installs them, with no package that would pull in TensorFlow."""

from __future__ import annotations

from pathlib import Path


def network_file(name: str) -> Path:
    """The installed network file `name`, checked to exist."""
    path = Path(__file__).with_name(name)
    if not path.is_file():
        raise RuntimeError(
            f"face network file {name} is missing from {path.parent}: this installation of the service lacks its "
            "package data. Reinstall it (make env, or pip install '.[service]' from a full checkout), "
            "or start the service with --face-detector haar"
        )
    return path
