"""A .tflite network run by LiteRT (TensorFlow Lite's runtime, without TensorFlow): how the face networks run.

Why LiteRT and not OpenCV's DNN module, which reads the same files: on our 2-core machines, one thread each,
BlazeFace's 128x128 pass takes 1.5 ms in LiteRT (XNNPACK) against 4.6 ms in OpenCV 4.14, and FaceMesh's 3.0 ms
against 6.9 ms (docs/performance.md).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter

THREADS = 1  # per network: the service runs many streams side by side, each call on one core
MAX_INPUT_SHAPES = 8  # interpreters kept, one per input shape seen, least recently used dropped first


class TfliteNetwork:
    """One network file, run on float32 NHWC batches of any shape the network accepts.

    An interpreter is planned for one input shape, and re-planning costs more than a run, so one is kept per
    shape recently seen (a detector's letterboxed pass and its frame-sized pass each keep theirs). An
    interpreter is not safe to share between threads: calls are serialised with a lock.
    """

    def __init__(self, path: Path, threads: int = THREADS) -> None:
        if not path.is_file():
            raise RuntimeError(f"network file not found: {path}: pass the path of an existing .tflite file")
        self.path = path
        self._threads = threads
        self._interpreters: OrderedDict[tuple[int, ...], Interpreter] = OrderedDict()
        self._lock = threading.Lock()
        first = Interpreter(model_path=str(path), num_threads=threads)
        first.allocate_tensors()
        self.input_shape: tuple[int, ...] = tuple(int(side) for side in first.get_input_details()[0]["shape"])
        self._interpreters[self.input_shape] = first

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        """The network's outputs, in its own output order, for a float32 NHWC batch."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        with self._lock:
            interpreter = self._interpreter(batch.shape)
            interpreter.set_tensor(interpreter.get_input_details()[0]["index"], batch)
            interpreter.invoke()
            return [interpreter.get_tensor(output["index"]) for output in interpreter.get_output_details()]

    def _interpreter(self, shape: tuple[int, ...]) -> Interpreter:
        """The interpreter planned for `shape`, made on first use."""
        if shape in self._interpreters:
            self._interpreters.move_to_end(shape)
            return self._interpreters[shape]
        interpreter = Interpreter(model_path=str(self.path), num_threads=self._threads)
        interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], list(shape))
        interpreter.allocate_tensors()
        self._interpreters[shape] = interpreter
        if len(self._interpreters) > MAX_INPUT_SHAPES:
            self._interpreters.popitem(last=False)
        return interpreter
