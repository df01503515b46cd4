"""Which versions are loaded and served, and their states, as TF Serving's manager keeps them.

The source reports the versions of a model to serve (its version policy's pick) on every poll. A
version not yet loaded is loaded (START -> LOADING -> AVAILABLE, or END with the error), and only once
one of them is AVAILABLE are the versions no longer aspired retired (UNLOADING -> END): TF Serving's
availability-preserving policy, so there is always a version to answer. A version that failed to load is not tried again until the server restarts.
Requests keep the version they were given even if it is retired meanwhile.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import grpc
from google.protobuf.message import Message

from model_server import wire
from model_server.errors import ServingError
from model_server.loader import Servable
from model_server.source import ModelVersion

log = logging.getLogger(__name__)

State = wire.ModelVersionStatus.State
START, LOADING, AVAILABLE, UNLOADING, END = (
    State.Value(name) for name in ("START", "LOADING", "AVAILABLE", "UNLOADING", "END")
)

Loader = Callable[[str, int, str], Servable]


@dataclass(frozen=True)
class VersionStatus:
    version: int
    state: int  # a ModelVersionStatus.State
    error: ServingError | None = None  # why a load failed (state END)


def _servable_id(name: str, version: int) -> str:
    return f"{{name: {name} version: {version}}}"


class ModelManager:
    """Thread-safe: the source's thread loads and retires, gRPC threads look up servables."""

    def __init__(self, load: Loader):
        self._load = load
        self._lock = threading.Condition()
        self._serving: dict[str, dict[int, Servable]] = {}
        self._statuses: dict[str, dict[int, VersionStatus]] = {}

    def set_aspired_versions(self, name: str, aspired: Sequence[ModelVersion]) -> None:
        """Serve the `aspired` versions; retire the others once one of the aspired ones is available
        (at once when none is aspired: the model is gone from disk or from the configuration)."""
        for version in sorted(aspired, key=lambda version: version.number, reverse=True):  # newest serves first
            if self._needs_load(name, version.number):
                self._load_version(name, version)
        numbers = {version.number for version in aspired}
        with self._lock:
            serving = self._serving.get(name, {})
            if numbers and not numbers & serving.keys():
                return  # keep what serves until an aspired version does
            retiring = [version for version in serving if version not in numbers]
        for version in retiring:
            self._retire(name, version)

    def servable(self, model_spec: Message) -> Servable:
        """The version a request asks for: ModelSpec.version, or the newest available one."""
        if not model_spec.name:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "ModelSpec has no name specified.")
        choice = model_spec.WhichOneof("version_choice")
        if choice == "version_label":
            # No labels are configured here, so none is recognised (TF Serving's answer too).
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT, f"Unrecognized servable version label: {model_spec.version_label}"
            )
        with self._lock:
            serving = self._serving.get(model_spec.name, {})
            if choice == "version":
                found = serving.get(model_spec.version.value)
                request = f"Specific({model_spec.name}, {model_spec.version.value})"
            else:
                found = serving[max(serving)] if serving else None
                request = f"Latest({model_spec.name})"
        if found is None:
            raise ServingError(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: {request}")
        return found

    def version_statuses(self, name: str, version: int | None = None) -> list[VersionStatus]:
        """States of one version, or of every version seen since start (newest first)."""
        with self._lock:
            statuses = dict(self._statuses.get(name, {}))
        if version is not None:
            if version not in statuses:
                raise ServingError(grpc.StatusCode.NOT_FOUND, f"Could not find version {version} of model {name}")
            return [statuses[version]]
        if not statuses:
            raise ServingError(grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {name}")
        return [statuses[number] for number in sorted(statuses, reverse=True)]

    def wait_until_available(self, names: Iterable[str], stopped: threading.Event) -> bool:
        """Block until every model serves a version (True) or `stopped` is set (False).

        Raises ServingError when a model's newest version failed to load and it has nothing to serve,
        as TF Serving refuses to start then.
        """
        names = list(names)
        with self._lock:
            while not stopped.is_set():
                failures = [self._failure(name) for name in names if not self._serving.get(name)]
                failures = [failure for failure in failures if failure is not None]
                if failures:
                    # TF Serving's wording, down to the braces and the trailing ", ".
                    listed = "".join(f"{{{servable} due to error: {error}}}, " for servable, error in failures)
                    raise ServingError(
                        grpc.StatusCode.UNKNOWN, f"{len(failures)} model(s) did not become available: {{{listed}}}"
                    )
                if all(self._serving.get(name) for name in names):
                    return True
                self._lock.wait(timeout=0.5)
        return False

    def _needs_load(self, name: str, version: int) -> bool:
        with self._lock:
            status = self._statuses.get(name, {}).get(version)
        # A version that ended without error was retired earlier and is aspired again: reload it.
        return status is None or (status.state == END and status.error is None)

    def _load_version(self, name: str, version: ModelVersion) -> None:
        servable_id = _servable_id(name, version.number)
        self._set_status(name, VersionStatus(version.number, START))
        log.info("Loading servable version %s", servable_id)
        self._set_status(name, VersionStatus(version.number, LOADING))
        try:
            servable = self._load(name, version.number, version.path)
        except Exception as error:  # any failure ends this version; the server keeps running
            failure = _as_serving_error(error)
            log.error("Loading servable version %s failed: %s", servable_id, failure.message)
            self._set_status(name, VersionStatus(version.number, END, failure))
            return
        with self._lock:
            self._serving.setdefault(name, {})[version.number] = servable
            self._statuses.setdefault(name, {})[version.number] = VersionStatus(version.number, AVAILABLE)
            self._lock.notify_all()
        log.info("Successfully loaded servable version %s", servable_id)

    def _retire(self, name: str, version: int) -> None:
        servable_id = _servable_id(name, version)
        with self._lock:
            del self._serving[name][version]
            self._statuses[name][version] = VersionStatus(version, UNLOADING)
        log.info("Unloading servable version %s", servable_id)
        # In-flight requests hold their own reference; the model is freed when the last one finishes.
        self._set_status(name, VersionStatus(version, END))
        log.info("Done unloading servable version %s", servable_id)

    def _set_status(self, name: str, status: VersionStatus) -> None:
        with self._lock:
            self._statuses.setdefault(name, {})[status.version] = status
            self._lock.notify_all()

    def _failure(self, name: str) -> tuple[str, str] | None:
        """(servable id, error) of the model's newest version if its load failed; call with the lock held."""
        statuses = self._statuses.get(name)
        if not statuses:
            return None
        newest = statuses[max(statuses)]
        if newest.error is None:
            return None
        return _servable_id(name, newest.version), f"{newest.error.code.name}: {newest.error.message}"


def _as_serving_error(error: Exception) -> ServingError:
    if isinstance(error, ServingError):
        return error
    return ServingError(grpc.StatusCode.UNKNOWN, f"{type(error).__name__}: {error}")
