"""Finds the version directories of each model on disk, as TF Serving's FileSystemStoragePathSource does.

A version is a child directory of the model's base path whose name is an integer and which holds a
saved_model.pb. Every poll reports the versions the model's version policy picks among them (by default
the newest one) to a callback, which decides what to load and unload. The list of models can change
while it runs (a re-read --model_config_file): a model no longer listed is reported with no versions.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
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


AspiredVersionsCallback = Callable[[str, "list[ModelVersion]"], None]


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
    """Polls the base path of every model and reports the versions its policy picks ([] when none)."""

    def __init__(self, models: Sequence[ModelConfig], poll_wait_seconds: float, on_aspired: AspiredVersionsCallback):
        self._models = list(models)
        self._poll_wait_seconds = poll_wait_seconds
        self._on_aspired = on_aspired
        self._last_seen: dict[tuple[str, str], object] = {}
        self._lock = threading.Lock()  # one poll at a time, and none while the models change
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def set_models(self, models: Sequence[ModelConfig]) -> None:
        """Serve these models from now on: the next poll reports them; a model left out is unloaded now."""
        with self._lock:
            kept = {model.name for model in models}
            removed = [model.name for model in self._models if model.name not in kept]
            self._models = list(models)
            for name in removed:
                log.info("Model %s is no longer in the model config: unloading its versions", name)
                self._last_seen.pop((name, "versions"), None)
                self._last_seen.pop((name, "missing"), None)
                self._on_aspired(name, [])

    def poll(self, threads: int = 1) -> None:
        """Look at disk once and report each model's versions to serve; with `threads` > 1 the models are
        reported (and so loaded) side by side, as TF Serving loads the models it starts with."""
        with self._lock:
            if threads <= 1 or len(self._models) <= 1:
                for model in self._models:
                    self._poll_model(model)
                return
            with ThreadPoolExecutor(min(threads, len(self._models)), thread_name_prefix="initial-load") as pool:
                for polled in [pool.submit(self._poll_model, model) for model in self._models]:
                    polled.result()

    def _poll_model(self, model: ModelConfig) -> None:
        try:
            found = find_versions(model.base_path)
        except FileNotFoundError:
            # Like TF Serving: a missing base path is reported, but what is loaded stays loaded.
            if self._changed((model.name, "versions"), _BASE_PATH_MISSING):
                log.error("Could not find base path %s for servable %s", model.base_path, model.name)
            return
        chosen = set(model.version_policy.select([version.number for version in found]))
        aspired = [version for version in found if version.number in chosen]
        if self._changed((model.name, "versions"), tuple(aspired)):
            if not aspired:
                log.warning(
                    "No versions of servable %s found under base path %s. Did you forget to name your leaf "
                    "directory as a number (eg. '/1/')?", model.name, model.base_path,
                )
            for version in aspired:
                log.info("Aspiring version for servable %s from path: %s", model.name, version.path)
        missing = sorted(model.version_policy.versions - {version.number for version in found})
        if self._changed((model.name, "missing"), tuple(missing)) and missing:
            log.warning(
                "Version(s) %s of servable %s, which were requested to be served as 'specific' versions in the "
                "servable's version policy, were not found in the file system", missing, model.name,
            )
        self._on_aspired(model.name, aspired)

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

    def _changed(self, key: tuple[str, str], observed: object) -> bool:
        """Whether a poll saw something else than the last one, so only changes are logged and a server
        left running keeps a readable log."""
        changed = key not in self._last_seen or self._last_seen[key] != observed
        self._last_seen[key] = observed
        return changed
