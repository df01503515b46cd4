"""The parts of the development model server on their own: source, manager, configuration, loader, tensors.

Messages handed to the server's parts are model_server.wire's (the vendored protos, in the server's own
descriptor pool); TensorFlow and the official stubs serve as references beside them.
"""

from __future__ import annotations

import re
import threading

import grpc
import numpy as np
import pytest
import tensorflow as tf
from dev_server_models import sample_input, write_model
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

from model_server import wire

from model_server.config import (
    ConfigError, ModelConfig, VersionPolicy, read_model_config_file, read_session_config_file, single_model_config,
)
from model_server.config_reload import ConfigFilePoller
from model_server.errors import ServingError
from model_server.loader import load_servable
from model_server.manager import AVAILABLE, END, ModelManager, VersionStatus
from model_server.source import FileSystemSource, ModelVersion, find_versions
from model_server.tf_runtime import session_config
from model_server.tfrecord import DataLossError, masked_crc32c, read_records
from protos.tfserving.tensors import fill_tensor_proto, to_ndarray

pytestmark = pytest.mark.ml


def make_version_dir(base, name: str, complete: bool = True):
    directory = base / name
    directory.mkdir(parents=True)
    if complete:
        (directory / "saved_model.pb").write_bytes(b"")
    return directory


# --- source -------------------------------------------------------------------------------------------------


def test_versions_are_integer_directories_holding_a_saved_model(tmp_path):
    for name in ("1", "10", "007"):
        make_version_dir(tmp_path, name)
    make_version_dir(tmp_path, "11", complete=False)  # still being written
    make_version_dir(tmp_path, ".staging-12-abc")
    make_version_dir(tmp_path, "v13")
    (tmp_path / "14").write_text("a file, not a directory")

    assert [version.number for version in find_versions(str(tmp_path))] == [1, 7, 10]


def test_source_reports_the_newest_version_or_none(tmp_path):
    reports = []
    source = FileSystemSource(
        [ModelConfig("empty", str(tmp_path / "empty")), ModelConfig("audio", str(tmp_path / "audio"))],
        poll_wait_seconds=1,
        on_aspired=lambda name, versions: reports.append((name, versions)),
    )
    (tmp_path / "empty").mkdir()
    make_version_dir(tmp_path / "audio", "1")
    make_version_dir(tmp_path / "audio", "2")

    source.poll()
    assert reports == [("empty", []), ("audio", [ModelVersion(2, str(tmp_path / "audio" / "2"))])]


@pytest.mark.parametrize(
    "policy, aspired",
    [
        (VersionPolicy("latest", num_versions=2), [3, 7]),
        (VersionPolicy("latest", num_versions=9), [1, 3, 7]),
        (VersionPolicy("all"), [1, 3, 7]),
        (VersionPolicy("specific", versions=frozenset({1, 7, 8})), [1, 7]),
    ],
)
def test_source_reports_the_versions_the_policy_picks(tmp_path, policy, aspired):
    for number in ("1", "3", "7"):
        make_version_dir(tmp_path / "audio", number)
    reports = []
    source = FileSystemSource([ModelConfig("audio", str(tmp_path / "audio"), policy)], 1,
                              lambda name, versions: reports.append([v.number for v in versions]))
    source.poll()
    assert reports == [aspired]


def test_source_reports_the_models_side_by_side_when_given_threads(tmp_path):
    # At start-up every model loads at once, as in TF Serving: each report waits here for the other's.
    both_reported = threading.Barrier(2, timeout=10)
    reports = []

    def report(name, versions):
        both_reported.wait()
        reports.append(name)

    for name in ("audio", "video"):
        make_version_dir(tmp_path / name, "1")
    source = FileSystemSource([ModelConfig(name, str(tmp_path / name)) for name in ("audio", "video")], 1, report)
    source.poll(threads=2)
    assert sorted(reports) == ["audio", "video"]


def test_source_unloads_a_model_dropped_from_the_configuration(tmp_path):
    make_version_dir(tmp_path / "audio", "1")
    make_version_dir(tmp_path / "video", "1")
    audio, video = ModelConfig("audio", str(tmp_path / "audio")), ModelConfig("video", str(tmp_path / "video"))
    reports = []
    source = FileSystemSource([audio, video], 1, lambda name, versions: reports.append((name, len(versions))))

    source.set_models([video])
    source.poll()
    assert reports == [("audio", 0), ("video", 1)]


def test_source_reports_nothing_for_a_missing_base_path(tmp_path):
    reports = []
    source = FileSystemSource([ModelConfig("audio", str(tmp_path / "gone"))], 1, lambda *report: reports.append(report))
    source.poll()
    assert reports == []  # what is loaded stays loaded, as in TF Serving


# --- manager ------------------------------------------------------------------------------------------------


class FakeLoader:
    """Stands in for loading a SavedModel: returns a token, or fails for the versions told to."""

    def __init__(self, failing: tuple[int, ...] = ()):
        self.failing = failing
        self.loaded: list[int] = []

    def __call__(self, name: str, version: int, path: str):
        self.loaded.append(version)
        if version in self.failing:
            raise ServingError(grpc.StatusCode.DATA_LOSS, f"cannot read {path}")
        return f"{name}:{version}"


def version(number: int) -> ModelVersion:
    return ModelVersion(number, f"/models/audio/{number}")


def latest(manager: ModelManager, name: str = "audio"):
    return manager.servable(wire.ModelSpec(name=name))


def test_manager_serves_the_newest_version_and_retires_the_old_after_it():
    manager = ModelManager(FakeLoader())
    manager.set_aspired_versions("audio", [version(1)])
    assert latest(manager) == "audio:1"

    manager.set_aspired_versions("audio", [version(2)])
    assert latest(manager) == "audio:2"
    assert manager.version_statuses("audio") == [VersionStatus(2, AVAILABLE), VersionStatus(1, END)]
    with pytest.raises(ServingError, match=r"Servable not found for request: Specific\(audio, 1\)"):
        manager.servable(wire.ModelSpec(name="audio", version={"value": 1}))


def test_manager_keeps_serving_the_old_version_when_the_new_one_fails_and_does_not_retry_it():
    loader = FakeLoader(failing=(2,))
    manager = ModelManager(loader)
    manager.set_aspired_versions("audio", [version(1)])
    manager.set_aspired_versions("audio", [version(2)])
    manager.set_aspired_versions("audio", [version(2)])

    assert latest(manager) == "audio:1"
    failed, serving = manager.version_statuses("audio")
    assert (failed.version, failed.state, failed.error.code, failed.error.message) == (
        2, END, grpc.StatusCode.DATA_LOSS, "cannot read /models/audio/2"
    )
    assert serving == VersionStatus(1, AVAILABLE)
    assert loader.loaded == [1, 2]


def test_manager_loads_nothing_again_while_the_aspired_version_serves():
    loader = FakeLoader()
    manager = ModelManager(loader)
    for _ in range(3):
        manager.set_aspired_versions("audio", [version(1)])
    assert loader.loaded == [1]


def test_manager_reloads_an_older_version_aspired_again():
    manager = ModelManager(FakeLoader())
    manager.set_aspired_versions("audio", [version(1)])
    manager.set_aspired_versions("audio", [version(2)])
    manager.set_aspired_versions("audio", [version(1)])  # version 2 was deleted from disk

    assert latest(manager) == "audio:1"
    assert manager.version_statuses("audio") == [VersionStatus(2, END), VersionStatus(1, AVAILABLE)]


def test_manager_stops_serving_a_model_whose_versions_are_all_gone():
    manager = ModelManager(FakeLoader())
    manager.set_aspired_versions("audio", [version(1)])
    manager.set_aspired_versions("audio", [])

    with pytest.raises(ServingError, match=r"Servable not found for request: Latest\(audio\)"):
        latest(manager)
    assert manager.version_statuses("audio") == [VersionStatus(1, END)]


def test_manager_serves_every_aspired_version_and_retires_those_no_longer_aspired():
    manager = ModelManager(FakeLoader())
    manager.set_aspired_versions("audio", [version(1), version(2)])
    assert latest(manager) == "audio:2"
    assert manager.servable(wire.ModelSpec(name="audio", version={"value": 1})) == "audio:1"

    manager.set_aspired_versions("audio", [version(2), version(3)])
    assert manager.version_statuses("audio") == [
        VersionStatus(3, AVAILABLE), VersionStatus(2, AVAILABLE), VersionStatus(1, END)
    ]


def test_manager_keeps_an_unaspired_version_while_no_aspired_one_loads():
    manager = ModelManager(FakeLoader(failing=(5,)))
    manager.set_aspired_versions("audio", [version(1)])
    manager.set_aspired_versions("audio", [version(5)])  # a specific policy that now names a broken version
    assert latest(manager) == "audio:1"


def test_waiting_for_models_fails_when_the_only_version_failed_to_load():
    manager = ModelManager(FakeLoader(failing=(1,)))
    manager.set_aspired_versions("audio", [version(1)])
    with pytest.raises(ServingError, match="1 model.s. did not become available"):
        manager.wait_until_available(["audio"], threading.Event())


def test_waiting_for_models_ends_when_asked_to_stop():
    manager = ModelManager(FakeLoader())
    stopped = threading.Event()
    stopped.set()
    assert manager.wait_until_available(["audio"], stopped) is False


# --- configuration ------------------------------------------------------------------------------------------


def write_config(tmp_path, entries: str):
    path = tmp_path / "models.config"
    path.write_text(f"model_config_list {{ {entries} }}")
    return str(path)


def test_config_file_lists_the_models(tmp_path):
    path = write_config(
        tmp_path,
        'config { name: "audio" base_path: "/m/audio" model_platform: "tensorflow" } '
        'config { name: "video" base_path: "/m/video" model_platform: "tensorflow" }',
    )
    assert read_model_config_file(path) == [ModelConfig("audio", "/m/audio"), ModelConfig("video", "/m/video")]


@pytest.mark.parametrize(
    "entries, message",
    [
        ('config { name: "a" base_path: "m/a" model_platform: "tensorflow" }',
         "Expected model a to have an absolute path or URI; got base_path()=m/a"),
        ('config { name: "a" base_path: "/m/a" model_platform: "tensorflow" } '
         'config { name: "a" base_path: "/m/b" model_platform: "tensorflow" }',
         "Illegal to list model a multiple times in config list"),
        ('config { name: "a" base_path: "/m/a" }', "Illegal setting neither ModelServerConfig::model_type"),
        ('config { name: "a" base_path: "/m/a" model_platform: "tflite" }',
         "Model a requests unsupported platform tflite"),
        ('config { name: "a" base_path: "/m/a" model_platform: "tensorflow" '
         'version_labels { key: "stable" value: 1 } }', "version_labels not supported"),
        ('config { name: "a" base_path: "/m/a" model_platform: "tensorflow" '
         'model_version_policy { specific {} } }', "specific lists no versions"),
        ("config { nme: 3 }", "Invalid protobuf file"),
    ],
)
def test_invalid_config_files_are_refused_with_the_reason(tmp_path, entries, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        read_model_config_file(write_config(tmp_path, entries))


@pytest.mark.parametrize(
    "policy, expected",
    [
        ("", VersionPolicy("latest", num_versions=1)),
        ("model_version_policy { latest { num_versions: 3 } }", VersionPolicy("latest", num_versions=3)),
        ("model_version_policy { latest { } }", VersionPolicy("latest", num_versions=1)),  # 0 counts as 1
        ("model_version_policy { all { } }", VersionPolicy("all")),
        ("model_version_policy { specific { versions: 2 versions: 5 } }",
         VersionPolicy("specific", versions=frozenset({2, 5}))),
    ],
)
def test_config_file_reads_each_models_version_policy(tmp_path, policy, expected):
    path = write_config(tmp_path, f'config {{ name: "audio" base_path: "/m/audio" model_platform: "tensorflow" {policy} }}')
    assert read_model_config_file(path) == [ModelConfig("audio", "/m/audio", expected)]


def test_config_poller_applies_a_changed_file_and_ignores_one_that_no_longer_parses(tmp_path):
    entry = 'config {{ name: "{}" base_path: "/m/{}" model_platform: "tensorflow" }}'
    path = write_config(tmp_path, entry.format("audio", "audio"))
    applied = []
    poller = ConfigFilePoller(path, 1, read_model_config_file(path), applied.append)

    poller.poll()
    assert applied == []  # unchanged
    write_config(tmp_path, entry.format("audio", "audio") + entry.format("video", "video"))
    poller.poll()
    assert applied == [[ModelConfig("audio", "/m/audio"), ModelConfig("video", "/m/video")]]
    write_config(tmp_path, "config { nme: 3 }")
    poller.poll()
    assert len(applied) == 1


def test_single_model_flags_need_an_absolute_base_path():
    assert single_model_config("audio", "/m/audio") == [ModelConfig("audio", "/m/audio")]
    with pytest.raises(ConfigError, match="absolute path"):
        single_model_config("audio", "model_repository/audio")


# --- loader -------------------------------------------------------------------------------------------------


def test_unreadable_warmup_records_fail_the_load(tmp_path):
    export_dir = write_model(tmp_path, "audio", 1)
    (export_dir / "assets.extra" / "tf_serving_warmup_requests").write_bytes(b"\x00" * 40)

    with pytest.raises(ServingError) as failed:
        load_servable("audio", 1, str(export_dir), enable_warmup=True)
    assert failed.value.code == grpc.StatusCode.DATA_LOSS
    assert failed.value.message.endswith(". Please verify your warmup data is in TFRecord format.")
    assert load_servable("audio", 1, str(export_dir), enable_warmup=False).version == 1


def test_a_warmup_request_the_model_refuses_fails_the_load(tmp_path):
    export_dir = write_model(tmp_path, "audio", 1, warmup=False)
    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name="audio"))
    request.inputs["features"].CopyFrom(tf.make_tensor_proto(sample_input("audio", 1).astype(np.float64)))
    (export_dir / "assets.extra").mkdir()
    with tf.io.TFRecordWriter(str(export_dir / "assets.extra" / "tf_serving_warmup_requests")) as writer:
        writer.write(prediction_log_pb2.PredictionLog(predict_log={"request": request}).SerializeToString())

    with pytest.raises(ServingError, match=r"Expects arg\[0\] to be float but double is provided"):
        load_servable("audio", 1, str(export_dir), enable_warmup=True)


def test_session_config_file_is_kept_and_the_parallelism_flags_set_its_thread_pools(tmp_path):
    path = tmp_path / "session.config"
    path.write_text("intra_op_parallelism_threads: 8\nexperimental { disable_thread_spinning: true }\n")

    config = session_config(1, 2, read_session_config_file(str(path)))

    assert config.experimental.disable_thread_spinning
    assert (config.intra_op_parallelism_threads, config.inter_op_parallelism_threads) == (1, 2)
    assert session_config(0, 0, read_session_config_file(str(path))).intra_op_parallelism_threads == 8


def test_an_invalid_session_config_file_is_refused_with_the_reason(tmp_path):
    path = tmp_path / "session.config"
    path.write_text("experimental { no_such_option: true }")
    with pytest.raises(ConfigError, match="Invalid protobuf file"):
        read_session_config_file(str(path))
    with pytest.raises(ConfigError, match="Could not read session config file"):
        read_session_config_file(str(tmp_path / "missing.config"))


# --- tensors ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, dtype, field",
    [
        (np.arange(6, dtype=np.float32).reshape(2, 3), types_pb2.DT_FLOAT, "float_val"),
        (np.arange(6, dtype=np.int64).reshape(3, 2), types_pb2.DT_INT64, "int64_val"),
        (np.array([[b"happy", b"sad"]], dtype=object), types_pb2.DT_STRING, "string_val"),
        (np.array([True, False]), types_pb2.DT_BOOL, "bool_val"),
    ],
)
def test_outputs_are_encoded_in_the_typed_field_and_decode_back(value, dtype, field):
    proto = wire.TensorProto()
    fill_tensor_proto(proto, value, typed=True)
    assert proto.dtype == dtype and not proto.tensor_content
    assert len(getattr(proto, field)) == value.size
    np.testing.assert_array_equal(tf.make_ndarray(proto), value)
    np.testing.assert_array_equal(to_ndarray(proto), value)


@pytest.mark.parametrize(
    "value",
    [
        np.arange(6, dtype=np.float32).reshape(2, 3), np.arange(4, dtype=np.float16), np.arange(3, dtype=np.uint8),
        np.arange(3, dtype=np.int16), np.array([[b"a", b"bc"]], dtype=object), np.array(2.5, dtype=np.float64),
    ],
)
def test_tensors_decode_as_tensorflow_decodes_them_from_either_encoding(value):
    for proto in (tf.make_tensor_proto(value), _typed(value)):
        decoded = to_ndarray(proto)
        assert decoded.dtype == tf.make_ndarray(proto).dtype
        np.testing.assert_array_equal(decoded, tf.make_ndarray(proto))


def test_a_tensor_whose_content_does_not_fill_its_shape_is_refused():
    proto = tf.make_tensor_proto(np.zeros((2, 3), np.float32))
    proto.tensor_shape.dim[0].size = 3
    with pytest.raises(ValueError, match="tensor_content holds 24 bytes"):
        to_ndarray(proto)


def _typed(value: np.ndarray):
    proto = wire.TensorProto()
    fill_tensor_proto(proto, value, typed=True)
    return proto


# --- warm-up records ----------------------------------------------------------------------------------------------


def test_tfrecords_written_by_tensorflow_are_read_back(tmp_path):
    path = tmp_path / "records"
    records = [b"", b"one", bytes(range(256)) * 40]
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)
    assert list(read_records(path)) == records


def test_the_masked_crc_is_tensorflows():
    # crc32c("123456789") = 0xE3069283 (RFC 3720); TensorFlow's mask rotates it by 15 bits and adds 0xA282EAD8.
    assert masked_crc32c(b"123456789") == ((((0xE3069283 >> 15) | (0xE3069283 << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


@pytest.mark.parametrize("damage, message", [(lambda data: data[:-2], "truncated record at 16"),
                                             (lambda data: data[:-1] + bytes([data[-1] ^ 1]), "corrupted record at 16")])
def test_a_damaged_record_is_data_loss_at_its_offset(tmp_path, damage, message):
    path = tmp_path / "records"
    with tf.io.TFRecordWriter(str(path)) as writer:
        writer.write(b"")
        writer.write(b"payload")
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(DataLossError, match=message):
        list(read_records(path))
