"""How the local stack lays out its model servers: models sharing a port get one process and a
ModelServerConfig listing them; a model on a port of its own gets a server of its own."""

from __future__ import annotations

from pathlib import Path

from google.protobuf import text_format

from protos.tfserving import model_server_config_pb2
from scripts.local_stack import LocalStack, model_config_text


def test_models_sharing_a_port_are_served_by_one_model_server():
    stack = LocalStack(audio_port=8600, video_port=8600)
    assert stack.model_server_parts == ["model-server"]
    assert stack.models_served_with("audio") == ("audio", "video")
    assert stack.model_target("audio") == stack.model_target("video")


def test_models_on_ports_of_their_own_get_a_model_server_each():
    stack = LocalStack(audio_port=8600, video_port=8601)
    assert stack.model_server_parts == ["audio-model-server", "video-model-server"]
    assert stack.models_served_with("video") == ("video",)


def test_the_model_config_lists_each_model_with_the_latest_version_policy(tmp_path: Path):
    config = text_format.Parse(model_config_text(tmp_path, ("audio", "video")), model_server_config_pb2.ModelServerConfig())
    entries = config.model_config_list.config
    assert [(e.name, e.base_path, e.model_platform) for e in entries] == [
        ("audio", str(tmp_path.resolve() / "audio"), "tensorflow"),
        ("video", str(tmp_path.resolve() / "video"), "tensorflow"),
    ]
    assert all(e.model_version_policy.latest.num_versions == 1 for e in entries)
