"""Re-reads --model_config_file every --model_config_file_poll_wait_seconds, as tensorflow_model_server does,
so models can be added, removed or given another version policy without a restart."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from model_server.config import ConfigError, ModelConfig, read_model_config_file

log = logging.getLogger(__name__)


class ConfigFilePoller:
    """Calls `apply` with the file's models whenever they differ from the last ones applied; a file that
    no longer parses is logged and ignored, and what serves keeps serving."""

    def __init__(
        self, path: str, poll_wait_seconds: float, current: Sequence[ModelConfig],
        apply: Callable[[list[ModelConfig]], None],
    ):
        self._path = path
        self._poll_wait_seconds = poll_wait_seconds
        self._current = list(current)
        self._apply = apply
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._poll_until_stopped, name="model-config-poller", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join()

    def poll(self) -> None:
        """Read the file once and apply it if it changed."""
        try:
            models = read_model_config_file(self._path)
        except ConfigError as error:
            log.error("Failed to read ModelServerConfig file, keeping the models being served: %s", error)
            return
        if models == self._current:
            return
        log.info("Model config file %s changed: now serving %s", self._path, ", ".join(m.name for m in models) or "nothing")
        self._current = models
        self._apply(models)

    def _poll_until_stopped(self) -> None:
        while not self._stopped.wait(self._poll_wait_seconds):
            try:
                self.poll()
            except Exception:  # a bug in one poll must not stop later ones
                log.exception("Reloading the model config file failed")
