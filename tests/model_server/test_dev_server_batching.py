"""Server-side batching (--enable_batching, --batching_parameters_file): the scheduler on its own, a loaded
model behind it, and the server process with the flags."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
import tensorflow as tf
from dev_server_models import run_directly, sample_input, write_model
from dev_server_process import DevModelServer
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_service_pb2_grpc

from model_server.__main__ import _batching_options, parse_args
from model_server.batching import BatchingOptions, BatchScheduler, read_batching_parameters_file
from model_server.config import ConfigError
from model_server.errors import ServingError
from model_server.loader import load_servable

pytestmark = pytest.mark.ml


class RecordingModel:
    """A run_batch that doubles its input "x" and records the batch sizes it was called with; a row
    holding NaN fails the whole run, as an op checking its input would."""

    def __init__(self):
        self.batch_sizes: list[int] = []
        self.lock = threading.Lock()

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self.lock:
            self.batch_sizes.append(len(inputs["x"]))
        if np.isnan(inputs["x"]).any():
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "input holds NaN")
        return {"y": 2.0 * inputs["x"]}


@pytest.fixture
def scheduler_factory():
    started = []

    def start(**options) -> BatchScheduler:
        scheduler = BatchScheduler(BatchingOptions(**{"num_batch_threads": 1, **options}))
        started.append(scheduler)
        return scheduler

    yield start
    for scheduler in started:
        scheduler.stop()


def call_concurrently(scheduler: BatchScheduler, model: RecordingModel, inputs: list[np.ndarray]) -> list:
    """Each input from a thread of its own, all submitted at once; each result, or the error raised."""

    def call(value):
        try:
            return scheduler.run("queue", {"x": value}, model)["y"]
        except ServingError as error:
            return error

    with ThreadPoolExecutor(len(inputs)) as pool:
        return list(pool.map(call, inputs))


def test_concurrent_requests_run_as_one_batch_and_each_gets_its_own_rows(scheduler_factory):
    scheduler = scheduler_factory(max_batch_size=8, batch_timeout_micros=10_000_000)
    model = RecordingModel()
    inputs = [np.full((1, 3), index, np.float32) for index in range(8)]

    started = time.monotonic()
    results = call_concurrently(scheduler, model, inputs)

    assert model.batch_sizes == [8]
    assert time.monotonic() - started < 5  # a full batch runs at once, without waiting for the 10 s timeout
    for value, result in zip(inputs, results):
        np.testing.assert_array_equal(result, 2.0 * value)


def test_requests_of_several_rows_keep_their_rows_in_order(scheduler_factory):
    scheduler = scheduler_factory(max_batch_size=6, batch_timeout_micros=10_000_000)
    model = RecordingModel()
    inputs = [np.arange(rows * 2, dtype=np.float32).reshape(rows, 2) + 10 * rows for rows in (1, 2, 3)]

    results = call_concurrently(scheduler, model, inputs)

    assert model.batch_sizes == [6]
    for value, result in zip(inputs, results):
        np.testing.assert_array_equal(result, 2.0 * value)


def test_one_failing_request_does_not_fail_the_others_of_its_batch(scheduler_factory):
    scheduler = scheduler_factory(max_batch_size=4, batch_timeout_micros=10_000_000)
    model = RecordingModel()
    inputs = [np.ones((1, 2), np.float32), np.full((1, 2), np.nan, np.float32), np.zeros((1, 2), np.float32),
              np.full((1, 2), 3.0, np.float32)]

    results = call_concurrently(scheduler, model, inputs)

    assert model.batch_sizes[0] == 4  # tried together first, then one by one
    assert isinstance(results[1], ServingError) and results[1].message == "input holds NaN"
    for index in (0, 2, 3):
        np.testing.assert_array_equal(results[index], 2.0 * inputs[index])


def test_a_request_alone_waits_for_the_batch_timeout_and_no_longer(scheduler_factory):
    scheduler = scheduler_factory(max_batch_size=8, batch_timeout_micros=300_000)
    model = RecordingModel()

    started = time.monotonic()
    scheduler.run("queue", {"x": np.ones((1, 2), np.float32)}, model)
    waited = time.monotonic() - started

    assert model.batch_sizes == [1]
    assert 0.3 <= waited < 0.3 + 1.0


def test_without_a_timeout_requests_batch_only_while_the_batch_threads_are_busy(scheduler_factory):
    scheduler = scheduler_factory(max_batch_size=8, batch_timeout_micros=0)
    model = RecordingModel()
    for _ in range(3):
        scheduler.run("queue", {"x": np.ones((1, 2), np.float32)}, model)
    assert model.batch_sizes == [1, 1, 1]


def test_batches_are_padded_to_the_next_allowed_size_and_the_padding_dropped(scheduler_factory):
    # Three requests do not fill a batch of 4: they run together once the first has waited 1 s.
    scheduler = scheduler_factory(max_batch_size=4, allowed_batch_sizes=(2, 4), batch_timeout_micros=1_000_000)
    model = RecordingModel()
    inputs = [np.full((1, 2), index + 1, np.float32) for index in range(3)]

    results = call_concurrently(scheduler, model, inputs)

    assert model.batch_sizes == [4]
    for value, result in zip(inputs, results):
        np.testing.assert_array_equal(result, 2.0 * value)


def test_variable_length_inputs_are_padded_with_their_first_value_when_asked(scheduler_factory):
    scheduler = scheduler_factory(max_batch_size=2, pad_variable_length_inputs=True, batch_timeout_micros=10_000_000)
    seen = []

    def model(inputs):
        seen.append(inputs["x"])
        return {"y": inputs["x"]}

    with ThreadPoolExecutor(2) as pool:
        short, long = pool.map(lambda value: scheduler.run("queue", {"x": value}, model)["y"],
                               [np.array([[5.0, 6.0]]), np.array([[1.0, 2.0, 3.0]])])

    assert len(seen) == 1
    np.testing.assert_array_equal(short, [[5.0, 6.0, 5.0]])
    np.testing.assert_array_equal(long, [[1.0, 2.0, 3.0]])


def test_inputs_of_other_shapes_are_not_mixed_without_padding(scheduler_factory):
    scheduler = scheduler_factory(max_batch_size=2, batch_timeout_micros=200_000)
    model = RecordingModel()

    results = call_concurrently(scheduler, model, [np.ones((1, 2), np.float32), np.ones((1, 3), np.float32)])

    assert model.batch_sizes == [1, 1]
    assert [result.shape for result in results] == [(1, 2), (1, 3)]


def test_a_request_larger_than_a_batch_is_refused(scheduler_factory):
    scheduler = scheduler_factory(max_batch_size=4)
    with pytest.raises(ServingError) as refused:
        scheduler.run("queue", {"x": np.ones((5, 2), np.float32)}, RecordingModel())
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.message == "Task size 5 is larger than maximum input batch size 4"


def test_a_full_queue_refuses_more_requests_as_unavailable(scheduler_factory):
    scheduler = scheduler_factory(max_batch_size=1, max_enqueued_batches=1)
    started, release = threading.Event(), threading.Event()

    def blocking_model(inputs):
        started.set()
        release.wait(10)
        return {"y": inputs["x"]}

    with ThreadPoolExecutor(2) as pool:
        running = pool.submit(scheduler.run, "queue", {"x": np.ones((1, 1))}, blocking_model)
        assert started.wait(10)  # the one batch thread runs it, and blocks
        queued = pool.submit(scheduler.run, "queue", {"x": np.ones((1, 1))}, blocking_model)
        wait_until(lambda: waiting_batches(scheduler) == 1)  # the queue's one batch
        with pytest.raises(ServingError) as refused:
            scheduler.run("queue", {"x": np.ones((1, 1))}, blocking_model)
        release.set()
        running.result(10), queued.result(10)
    assert refused.value.code == grpc.StatusCode.UNAVAILABLE
    assert refused.value.message == "The batch scheduling queue to which this task was submitted is full"


def waiting_batches(scheduler: BatchScheduler) -> int:
    """Batches queued and not yet taken by a batch thread (the scheduler's own state, read under its lock)."""
    with scheduler._changed:
        return sum(len(queue.batches) for queue in scheduler._queues.values())


def wait_until(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the scheduler did not get there"
        time.sleep(0.01)


def test_inputs_must_share_their_batch_dimension(scheduler_factory):
    scheduler = scheduler_factory()
    with pytest.raises(ServingError, match="Batching Run\\(\\) input tensors must have equal 0th-dimension size"):
        scheduler.run("queue", {"a": np.ones((1, 2)), "b": np.ones((2, 2))}, RecordingModel())


# --- parameters ---------------------------------------------------------------------------------------------


def test_parameters_file_sets_what_it_names_and_leaves_tf_servings_defaults(tmp_path):
    path = tmp_path / "batching.config"
    path.write_text("max_batch_size { value: 8 }\nbatch_timeout_micros { value: 2000 }\n"
                    "allowed_batch_sizes: 4\nallowed_batch_sizes: 8\n")

    options = read_batching_parameters_file(str(path))

    assert (options.max_batch_size, options.batch_timeout_micros, options.allowed_batch_sizes) == (8, 2000, (4, 8))
    defaults = BatchingOptions()
    assert (options.max_enqueued_batches, options.num_batch_threads) == (
        defaults.max_enqueued_batches, defaults.num_batch_threads
    )
    assert (defaults.max_batch_size, defaults.batch_timeout_micros, defaults.max_enqueued_batches) == (1000, 0, 10)


@pytest.mark.parametrize(
    "text, message",
    [
        ("max_batch_size { value: 8 } allowed_batch_sizes: 4", "Last entry in allowed_batch_sizes must match"),
        ("max_batch_size { value: 8 } allowed_batch_sizes: 8 allowed_batch_sizes: 8", "monotonically increasing"),
        ("num_batch_threads { value: 0 }", "num_batch_threads must be positive"),
        ("enable_large_batch_splitting { value: true }", "enable_large_batch_splitting is not supported"),
        ("max_batch_size: 8", "Invalid protobuf file"),
    ],
)
def test_invalid_parameters_are_refused_with_the_reason(tmp_path, text, message):
    path = tmp_path / "batching.config"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        read_batching_parameters_file(str(path))


def test_batching_is_off_by_default_and_a_parameters_file_needs_it_on(tmp_path):
    assert _batching_options(parse_args([])) is None
    assert _batching_options(parse_args(["--enable_batching"])) == BatchingOptions()
    with pytest.raises(ConfigError, match="batching_parameters_file is set without setting"):
        _batching_options(parse_args([f"--batching_parameters_file={tmp_path / 'batching.config'}"]))


# --- a loaded model, and the server ---------------------------------------------------------------------------


# A row batched with others is computed by other kernels than alone (AVX-512 CPUs pick them by batch size), so its
# probabilities differ by float32 rounding: relative to the larger ones, absolute (1e-7) for the tiny ones.
AS_ALONE = {"rtol": 1e-5, "atol": 1e-7}


def video_request(batch: np.ndarray) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name="video"), output_filter=["probabilities"])
    request.inputs["image"].CopyFrom(tf.make_tensor_proto(batch))
    return request


def test_a_batched_model_answers_each_request_as_it_would_alone(tmp_path, scheduler_factory):
    export_dir = write_model(tmp_path / "video", "video", 1, warmup=False)
    scheduler = scheduler_factory(max_batch_size=8, batch_timeout_micros=10_000_000)
    servable = load_servable("video", 1, str(export_dir), enable_warmup=False, batch_scheduler=scheduler)
    batches = [sample_input("video", rows, seed=rows) for rows in (1, 2, 1, 3, 1)]

    with ThreadPoolExecutor(len(batches)) as pool:
        responses = list(pool.map(lambda batch: servable.predict(video_request(batch)), batches))

    for batch, response in zip(batches, responses):
        expected = run_directly(export_dir, "video", batch)["probabilities"]
        np.testing.assert_allclose(tf.make_ndarray(response.outputs["probabilities"]), expected, **AS_ALONE)
        assert list(response.outputs) == ["probabilities"]


def test_server_with_batching_flags_answers_concurrent_predicts(tmp_path):
    export_dir = write_model(tmp_path / "video", "video", 1)
    parameters = tmp_path / "batching.config"
    parameters.write_text(
        "max_batch_size { value: 4 }\nbatch_timeout_micros { value: 5000 }\nnum_batch_threads { value: 1 }\n"
    )
    flags = ["--model_name=video", f"--model_base_path={tmp_path / 'video'}", "--enable_batching",
             f"--batching_parameters_file={parameters}"]
    batches = [sample_input("video", 1, seed=seed) for seed in range(12)]

    with DevModelServer(flags, tmp_path / "server.log") as server, grpc.insecure_channel(server.target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        with ThreadPoolExecutor(len(batches)) as pool:
            responses = list(pool.map(lambda batch: stub.Predict(video_request(batch), timeout=30), batches))
        log = server.log()

    assert "Wrapping session to perform batch processing" in log
    for batch, response in zip(batches, responses):
        expected = run_directly(export_dir, "video", batch)["probabilities"]
        np.testing.assert_allclose(tf.make_ndarray(response.outputs["probabilities"]), expected, **AS_ALONE)

