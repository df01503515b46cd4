"""Which models to serve: from --model_name/--model_base_path or a text-format ModelServerConfig file.

The checks and their messages are TF Serving's (server_core.cc), so a configuration that starts this
server also starts tensorflow_model_server, and one that it refuses is refused here too.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from google.protobuf import text_format
from google.protobuf.message import Message

from model_server import wire

TENSORFLOW_PLATFORM = "tensorflow"
# What a model_config_list entry may set here; the rest (version labels, request logging) is not
# implemented, and silently ignoring it would serve something else than was asked for.
_SUPPORTED_FIELDS = {"name", "base_path", "model_platform", "model_version_policy"}


class ConfigError(ValueError):
    """The model configuration is invalid; the message says what to change."""


MessageT = TypeVar("MessageT", bound=Message)


def read_text_proto(path: str, message: MessageT, kind: str) -> MessageT:
    """`message` filled from the text-format protobuf file at `path` (a `kind`, as the error names it); ConfigError
    worded as TF Serving's when the file cannot be read or parsed."""
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise ConfigError(f"Could not read {kind} '{path}': {error.strerror}") from None
    try:
        return text_format.Parse(text, message)
    except text_format.ParseError as error:
        raise ConfigError(f"Invalid protobuf file: '{path}' ({error})") from None


@dataclass(frozen=True)
class VersionPolicy:
    """Which of the versions found on disk to serve: TF Serving's ServableVersionPolicy."""

    choice: str = "latest"  # latest | all | specific
    num_versions: int = 1  # latest: how many of the newest
    versions: frozenset[int] = field(default_factory=frozenset)  # specific: exactly these

    def select(self, found: Sequence[int]) -> list[int]:
        """The versions to serve among `found` (ascending), as FileSystemStoragePathSource picks them."""
        if self.choice == "all":
            return list(found)
        if self.choice == "specific":
            return [number for number in found if number in self.versions]
        return list(found)[-self.num_versions:]

    def __str__(self) -> str:
        if self.choice == "specific":
            return f"specific {sorted(self.versions)}"
        return f"latest {self.num_versions}" if self.choice == "latest" else "all"


@dataclass(frozen=True)
class ModelConfig:
    name: str
    base_path: str
    version_policy: VersionPolicy = VersionPolicy()


def single_model_config(name: str, base_path: str) -> list[ModelConfig]:
    """The configuration tensorflow_model_server builds from --model_name and --model_base_path."""
    configs = [ModelConfig(name=name, base_path=base_path)]
    _validate(configs)
    return configs


def read_model_config_file(path: str) -> list[ModelConfig]:
    """Parse a ModelServerConfig text file (model_config_list { config { name, base_path, model_platform,
    model_version_policy } })."""
    server_config = read_text_proto(path, wire.ModelServerConfig(), "model config file")
    if server_config.WhichOneof("config") != "model_config_list":
        raise ConfigError(f"'{path}' has no model_config_list; only model_config_list is supported")
    configs = []
    for entry in server_config.model_config_list.config:
        _check_entry(entry)
        configs.append(
            ModelConfig(name=entry.name, base_path=entry.base_path, version_policy=_version_policy(entry))
        )
    _validate(configs)
    return configs


def _version_policy(entry: Message) -> VersionPolicy:
    policy = entry.model_version_policy
    choice = policy.WhichOneof("policy_choice")
    if choice == "all":
        return VersionPolicy("all")
    if choice == "specific":
        if not policy.specific.versions:
            raise ConfigError(f"Model {entry.name}: model_version_policy specific lists no versions; list at least one")
        return VersionPolicy("specific", versions=frozenset(policy.specific.versions))
    # Unset is "latest"; TF Serving serves at least one version (num_versions 0 counts as 1).
    return VersionPolicy("latest", num_versions=max(policy.latest.num_versions, 1))


def _check_entry(entry: Message) -> None:
    unsupported = sorted(field.name for field, _ in entry.ListFields() if field.name not in _SUPPORTED_FIELDS)
    if unsupported:
        raise ConfigError(
            f"Model {entry.name}: {', '.join(unsupported)} not supported by the development model server; "
            "remove them (it supports name, base_path, model_platform and model_version_policy)"
        )
    if not entry.model_platform:
        raise ConfigError(
            "Illegal setting neither ModelServerConfig::model_type (deprecated) nor ModelServerConfig::model_platform."
        )
    if entry.model_platform != TENSORFLOW_PLATFORM:
        raise ConfigError(f"Model {entry.name} requests unsupported platform {entry.model_platform}")


def _validate(configs: list[ModelConfig]) -> None:
    names: set[str] = set()
    for config in configs:
        if config.name in names:
            raise ConfigError(f"Illegal to list model {config.name} multiple times in config list")
        names.add(config.name)
        if not os.path.isabs(config.base_path):
            raise ConfigError(
                f"Expected model {config.name} to have an absolute path or URI; got base_path()={config.base_path}"
            )


def read_session_config_file(path: str) -> Message:
    """The TensorFlow session configuration of --tensorflow_session_config_file (a text-format ConfigProto).

    ConfigProto is TensorFlow's own message (a large tree the vendored protos leave out), so reading the file
    imports TensorFlow: a server given one is a server that configures TensorFlow Sessions.
    """
    from tensorflow.core.protobuf import config_pb2  # noqa: PLC0415 (see above)

    return read_text_proto(path, config_pb2.ConfigProto(), "session config file")
