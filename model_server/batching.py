"""Server-side batching, as TF Serving's --enable_batching does it (BatchingSession over a shared scheduler).

Concurrent Predicts of the same servable, signature, inputs and outputs wait in one queue; a batch thread
concatenates them along the 0th dimension, runs them as one Session.run and splits the outputs back. A batch
runs as soon as a batch thread is free and the batch is full or its oldest request has waited
batch_timeout_micros (0: whatever has queued meanwhile). Parameters come from a text-format
BatchingParameters file (--batching_parameters_file); omitted ones take TF Serving's defaults.

Two deliberate differences, both in a request's favour: requests whose inputs differ in a non-batch
dimension are queued apart unless pad_variable_length_inputs is set (TF Serving would fail the whole batch),
and a batch that fails is run again request by request, so one bad request cannot fail the others.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

import grpc
import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

from model_server.config import ConfigError, read_text_proto
from model_server.errors import ServingError

log = logging.getLogger(__name__)

RunBatch = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


def _batching_parameters_class():
    """tensorflow.serving.BatchingParameters (session_bundle_config.proto), which the tensorflow-serving-api
    package does not ship: declared with TF Serving's field names and numbers, in a pool of its own."""
    field_type = descriptor_pb2.FieldDescriptorProto
    optional, repeated = field_type.LABEL_OPTIONAL, field_type.LABEL_REPEATED
    int64_value, bool_value = ".google.protobuf.Int64Value", ".google.protobuf.BoolValue"
    fields = [
        ("max_batch_size", 1, field_type.TYPE_MESSAGE, int64_value, optional),
        ("batch_timeout_micros", 2, field_type.TYPE_MESSAGE, int64_value, optional),
        ("max_enqueued_batches", 3, field_type.TYPE_MESSAGE, int64_value, optional),
        ("num_batch_threads", 4, field_type.TYPE_MESSAGE, int64_value, optional),
        ("thread_pool_name", 5, field_type.TYPE_MESSAGE, ".google.protobuf.StringValue", optional),
        ("allowed_batch_sizes", 6, field_type.TYPE_INT64, "", repeated),
        ("pad_variable_length_inputs", 7, field_type.TYPE_BOOL, "", optional),
        ("enable_large_batch_splitting", 8, field_type.TYPE_MESSAGE, bool_value, optional),
        ("max_execution_batch_size", 9, field_type.TYPE_MESSAGE, int64_value, optional),
    ]
    file = descriptor_pb2.FileDescriptorProto(
        name="tensorflow_serving/servables/tensorflow/session_bundle_config.proto", package="tensorflow.serving",
        syntax="proto3", dependency=[wrappers_pb2.DESCRIPTOR.name],
    )
    message = file.message_type.add(name="BatchingParameters")
    for name, number, kind, type_name, label in fields:
        entry = message.field.add(name=name, number=number, type=kind, label=label, json_name=name)
        if type_name:
            entry.type_name = type_name
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters"))


BatchingParameters = _batching_parameters_class()


@dataclass(frozen=True)
class BatchingOptions:
    """The batching parameters in force; the defaults are TF Serving's (SharedBatchScheduler's options)."""

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    allowed_batch_sizes: tuple[int, ...] = ()
    pad_variable_length_inputs: bool = False


def read_batching_parameters_file(path: str) -> BatchingOptions:
    """BatchingOptions from a text-format BatchingParameters file; ConfigError says what to change."""
    parameters = read_text_proto(path, BatchingParameters(), "batching parameters file")
    for unsupported in ("enable_large_batch_splitting", "max_execution_batch_size"):
        if parameters.HasField(unsupported):
            raise ConfigError(
                f"{path}: {unsupported} is not supported by the development model server; remove it (a request "
                "larger than max_batch_size is refused instead of split)"
            )
    defaults = BatchingOptions()
    options = BatchingOptions(
        max_batch_size=_value(parameters, "max_batch_size", defaults.max_batch_size),
        batch_timeout_micros=_value(parameters, "batch_timeout_micros", defaults.batch_timeout_micros),
        max_enqueued_batches=_value(parameters, "max_enqueued_batches", defaults.max_enqueued_batches),
        num_batch_threads=_value(parameters, "num_batch_threads", defaults.num_batch_threads),
        allowed_batch_sizes=tuple(parameters.allowed_batch_sizes),
        pad_variable_length_inputs=parameters.pad_variable_length_inputs,
    )
    _validate(options, path)
    return options


def _value(parameters, name: str, default: int) -> int:
    return getattr(parameters, name).value if parameters.HasField(name) else default


def _validate(options: BatchingOptions, path: str) -> None:
    for name in ("max_batch_size", "max_enqueued_batches", "num_batch_threads"):
        if getattr(options, name) < 1:
            raise ConfigError(f"{path}: {name} must be positive; was {getattr(options, name)}")
    if options.batch_timeout_micros < 0:
        raise ConfigError(f"{path}: batch_timeout_micros must be non-negative; was {options.batch_timeout_micros}")
    sizes = options.allowed_batch_sizes
    if sizes:
        if any(later <= earlier for earlier, later in zip(sizes, sizes[1:])) or sizes[0] < 1:
            raise ConfigError(f"{path}: allowed_batch_sizes entries must be positive and monotonically increasing")
        if sizes[-1] != options.max_batch_size:
            raise ConfigError(
                f"{path}: Last entry in allowed_batch_sizes must match max_batch_size; last entry was {sizes[-1]}; "
                f"expected {options.max_batch_size}"
            )


class _Task:
    """One Predict's inputs, waiting for its share of a batch's outputs."""

    def __init__(self, inputs: dict[str, np.ndarray], size: int):
        self.inputs = inputs
        self.size = size
        self.enqueued = time.monotonic()
        self.outputs: dict[str, np.ndarray] | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()

    def finish(self, outputs: dict[str, np.ndarray] | None = None, error: BaseException | None = None) -> None:
        self.outputs, self.error = outputs, error
        self.done.set()


class _Queue:
    """The batches waiting for one (servable, signature, inputs, outputs): each a list of tasks."""

    def __init__(self, run_batch: RunBatch):
        self.run_batch = run_batch
        self.batches: deque[list[_Task]] = deque()

    @staticmethod
    def size(batch: list[_Task]) -> int:
        return sum(task.size for task in batch)


class BatchScheduler:
    """TF Serving's shared batch scheduler: num_batch_threads threads run the batches of every queue."""

    def __init__(self, options: BatchingOptions):
        self.options = options
        self._queues: dict[Hashable, _Queue] = {}
        self._changed = threading.Condition()
        self._stopped = False
        self._threads = [
            threading.Thread(target=self._run_batches, name=f"batch-{index}", daemon=True)
            for index in range(options.num_batch_threads)
        ]
        for thread in self._threads:
            thread.start()

    def run(self, queue_key: Hashable, inputs: dict[str, np.ndarray], run_batch: RunBatch) -> dict[str, np.ndarray]:
        """The outputs `run_batch` gives for `inputs`, computed in a batch with the other requests of the same
        queue; blocks until then. `run_batch` must be the same function for every request of a queue."""
        size = _batch_size(inputs)
        if size > self.options.max_batch_size:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Task size {size} is larger than maximum input batch size {self.options.max_batch_size}",
            )
        # Tensors that differ beyond the batch dimension (unless padded) or in rank cannot be concatenated:
        # they wait in queues of their own.
        pad = self.options.pad_variable_length_inputs
        queue_key = (queue_key, tuple(
            (alias, value.ndim if pad else value.shape[1:]) for alias, value in sorted(inputs.items())
        ))
        task = _Task(inputs, size)
        with self._changed:
            if self._stopped:
                raise ServingError(grpc.StatusCode.UNAVAILABLE, "The model server is stopping")
            queue = self._queues.setdefault(queue_key, _Queue(run_batch))
            if queue.batches and queue.size(queue.batches[-1]) + size <= self.options.max_batch_size:
                queue.batches[-1].append(task)
            elif len(queue.batches) < self.options.max_enqueued_batches:
                queue.batches.append([task])
            else:
                raise ServingError(
                    grpc.StatusCode.UNAVAILABLE, "The batch scheduling queue to which this task was submitted is full"
                )
            self._changed.notify()
        task.done.wait()
        if task.error is not None:
            raise task.error
        return task.outputs

    def stop(self) -> None:
        """Refuse new requests, run those queued, and end the batch threads."""
        with self._changed:
            self._stopped = True
            self._changed.notify_all()
        for thread in self._threads:
            thread.join()

    def _run_batches(self) -> None:
        while (taken := self._next_batch()) is not None:
            queue, batch = taken
            try:
                _run(queue.run_batch, batch, self.options)
            except BaseException as error:  # a bug: tell the batch's callers rather than leave them waiting
                log.exception("Running a batch failed")
                for task in batch:
                    if not task.done.is_set():
                        task.finish(error=error)

    def _next_batch(self) -> tuple[_Queue, list[_Task]] | None:
        """Wait for a batch that is due (full, or its oldest request waited the timeout; every batch once
        stopping) and take it out of its queue; None once stopped with nothing left."""
        timeout_s = self.options.batch_timeout_micros / 1e6
        with self._changed:
            while True:
                now = time.monotonic()
                due, next_due = None, None
                for key, queue in self._queues.items():
                    first = queue.batches[0]
                    full = len(queue.batches) > 1 or queue.size(first) >= self.options.max_batch_size
                    ready_at = now if full or self._stopped else first[0].enqueued + timeout_s
                    if ready_at <= now:
                        if due is None or first[0].enqueued < due[1][0].enqueued:
                            due = (key, first)
                    elif next_due is None or ready_at < next_due:
                        next_due = ready_at
                if due is not None:
                    key, batch = due
                    queue = self._queues[key]
                    queue.batches.popleft()
                    if not queue.batches:
                        del self._queues[key]
                    return queue, batch
                if self._stopped:
                    return None
                self._changed.wait(None if next_due is None else next_due - now)


def _batch_size(inputs: dict[str, np.ndarray]) -> int:
    """The requests' common 0th dimension (TF Serving's ComputeTensorBatchSize, with its messages)."""
    if not inputs:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "Batching Run() must have at least one input tensor")
    sizes = set()
    for value in inputs.values():
        if value.ndim == 0:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT, "Batching Run() input tensors must have at least one dimension"
            )
        sizes.add(value.shape[0])
    if len(sizes) > 1:
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT, "Batching Run() input tensors must have equal 0th-dimension size"
        )
    return sizes.pop()


def _run(run_batch: RunBatch, batch: list[_Task], options: BatchingOptions) -> None:
    """Run a batch and give each task its rows; if the batch fails, each task runs alone for its own answer."""
    try:
        outputs = _run_merged(run_batch, batch, options)
    except ServingError as error:
        if len(batch) == 1:
            batch[0].finish(error=error)
            return
        log.debug("A batch of %d requests failed (%s); running them one by one", len(batch), error.message)
        for task in batch:
            _run(run_batch, [task], options)
        return
    for task, task_outputs in zip(batch, outputs):
        task.finish(outputs=task_outputs)


def _run_merged(run_batch: RunBatch, batch: list[_Task], options: BatchingOptions) -> list[dict[str, np.ndarray]]:
    sizes = [task.size for task in batch]
    total = sum(sizes)
    padded_total = next((size for size in options.allowed_batch_sizes if size >= total), total)
    merged = {
        alias: _merge([task.inputs[alias] for task in batch], padded_total - total, options.pad_variable_length_inputs)
        for alias in batch[0].inputs
    }
    outputs = run_batch(merged)
    bounds = np.cumsum(sizes)[:-1]
    split: dict[str, list[np.ndarray]] = {}
    for alias, value in outputs.items():
        if value.ndim == 0:
            raise ServingError(grpc.StatusCode.FAILED_PRECONDITION, "Batched output tensor has 0 dimensions")
        if value.shape[0] != padded_total:
            raise ServingError(
                grpc.StatusCode.FAILED_PRECONDITION,
                "Batched output tensor's 0th dimension does not equal the sum of the 0th dimension sizes of the "
                "input tensors",
            )
        split[alias] = np.split(value[:total], bounds)
    return [{alias: parts[index] for alias, parts in split.items()} for index in range(len(batch))]


def _merge(values: list[np.ndarray], padding_rows: int, pad_variable_length: bool) -> np.ndarray:
    """Concatenate along the 0th dimension; pad other dimensions to the largest (with each tensor's first
    value) when asked, and add `padding_rows` copies of the first row to reach an allowed batch size, as
    TF Serving's BatchingSession does."""
    if pad_variable_length:
        largest = np.max([value.shape for value in values], axis=0)
        values = [_pad_to(value, largest) for value in values]
    if padding_rows:
        values = [*values, np.repeat(values[0][:1], padding_rows, axis=0)]
    return values[0] if len(values) == 1 else np.concatenate(values)


def _pad_to(value: np.ndarray, shape: np.ndarray) -> np.ndarray:
    widths = [(0, int(target) - size) for size, target in zip(value.shape, shape)]
    widths[0] = (0, 0)
    if not any(after for _, after in widths):
        return value
    if value.size == 0:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "Got empty tensor in batch of non-empty tensors.")
    return np.pad(value, widths, constant_values=value.reshape(-1)[0])
