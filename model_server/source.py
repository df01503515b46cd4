"""Finds the version directories of each model on disk, as TF Serving's FileSystemStoragePathSource does.

A version is a child directory of the model's base path whose name is an integer and which holds a
saved_model.pb. Every poll reports the newest one (TF Serving's default "latest" version policy) to a
callback, which decides what to load and unload.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from model_server.config import ModelConfig

log = logging.getLogger(__name__)

SAVED_MODEL_FILE = "saved_model.pb"
_VERSION_NAME = re.compile(r"\d+")
_BASE_PATH_MISSING = "base path missing"


@dataclass(frozen=True)
class ModelVersion:
    number: int
    path: str


AspiredVersionCallback = Callable[[str, "ModelVersion | None"], None]


def find_versions(base_path: str) -> list[ModelVersion]:
    """All complete versions under base_path, oldest first; FileNotFoundError if base_path is missing."""
    base = Path(base_path)
    if not base.is_dir():
        raise FileNotFoundError(base_path)
    versions = [
        ModelVersion(number=int(child.name), path=str(child))
        for child in base.iterdir()
        if _VERSION_NAME.fullmatch(child.name) and (child / SAVED_MODEL_FILE).is_file()
    ]
    return sorted(versions, key=lambda version: version.number)


class FileSystemSource:
    """Polls the base path of every model and reports its newest version (None when there is none)."""

    def __init__(self, models: Sequence[ModelConfig], poll_wait_seconds: float, on_aspired: AspiredVersionCallback):
        self._models = list(models)
        self._poll_wait_seconds = poll_wait_seconds
        self._on_aspired = on_aspired
        self._last_seen: dict[str, object] = {}
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def poll(self) -> None:
        """Look at disk once and report each model's newest version."""
        for model in self._models:
            try:
                versions = find_versions(model.base_path)
            except FileNotFoundError:
                # Like TF Serving: a missing base path is reported, but what is loaded stays loaded.
                self._log_once(
                    model.name, _BASE_PATH_MISSING, logging.ERROR,
                    "Could not find base path %s for servable %s", model.base_path, model.name,
                )
                continue
            latest = versions[-1] if versions else None
            if latest is None:
                self._log_once(
                    model.name, None, logging.WARNING,
                    "No versions of servable %s found under base path %s. Did you forget to name your leaf "
                    "directory as a number (eg. '/1/')?", model.name, model.base_path,
                )
            else:
                self._log_once(
                    model.name, latest, logging.INFO,
                    "Aspiring version for servable %s from path: %s", model.name, latest.path,
                )
            self._on_aspired(model.name, latest)

    def start(self) -> None:
        """Keep polling every poll_wait_seconds on a background thread (a negative wait polls no more)."""
        if self._poll_wait_seconds < 0:
            return
        self._thread = threading.Thread(target=self._poll_until_stopped, name="file-system-source", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()

    def _poll_until_stopped(self) -> None:
        while not self._stopped.wait(self._poll_wait_seconds):
            try:
                self.poll()
            except Exception:  # a bug in one poll must not stop the server from seeing new versions
                log.exception("Polling the model repository failed")

    def _log_once(self, model: str, observed: object, level: int, message: str, *args: object) -> None:
        """Log what a poll saw only when it changed, so a server left running keeps a readable log."""
        if model not in self._last_seen or self._last_seen[model] != observed:
            self._last_seen[model] = observed
            log.log(level, message, *args)
