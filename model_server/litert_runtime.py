"""Runs a version's signatures on LiteRT (TensorFlow Lite's runtime, without TensorFlow): the fast Predict path.

An interpreter is planned for one set of input shapes, and re-planning costs more than a run, so interpreters
are kept per (signature, input shapes) recently seen. An interpreter serves one call at a time: concurrent calls
of the same shapes each take an idle one, or make another, so that they run side by side as they would in a
TensorFlow Session (LiteRT releases the GIL while it runs).

A conversion whose batch dimension is fixed at 1 (a graph whose shape arithmetic only folds with a static batch,
see training/litert_export.py) runs a batch row by row and stacks the rows' outputs: its rows are independent,
as in every serving graph here.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import grpc
import numpy as np
from ai_edge_litert.interpreter import Interpreter

from model_server.errors import ServingError

MAX_SHAPES = 16  # (signature, input shapes) kept planned, least recently used dropped first

_ShapeKey = tuple[str, tuple[tuple[str, tuple[int, ...]], ...]]


class LiteRtRuntime:
    """Executes signatures by name on named numpy inputs; safe to call from many threads at once."""

    def __init__(self, model: bytes, threads: int) -> None:
        self._model = model
        self._threads = threads if threads > 0 else None  # None: LiteRT chooses
        self._lock = threading.Lock()
        self._idle: OrderedDict[_ShapeKey, list] = OrderedDict()
        probe = self._interpreter()
        self.signatures = {
            name: {alias: tuple(int(side) for side in detail["shape_signature"])
                   for alias, detail in probe.get_signature_runner(name).get_input_details().items()}
            for name in probe.get_signature_list()
        }

    def run(self, signature_name: str, inputs: dict[str, np.ndarray], output_aliases: list[str]
            ) -> dict[str, np.ndarray]:
        """The outputs named, for inputs already checked against the signature's aliases and dtypes."""
        shapes = self.signatures.get(signature_name)
        if shapes is None:
            raise ServingError(grpc.StatusCode.INTERNAL,
                               f"the LiteRT conversion has no signature {signature_name!r}; convert the version again")
        row_by_row = _check_shapes(shapes, inputs)
        if not row_by_row:
            outputs = self._invoke(signature_name, inputs)
        else:
            rows = {alias: len(value) for alias, value in inputs.items()}
            count = next(iter(rows.values()))
            if count == 0 or any(rows_of != count for rows_of in rows.values()):
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"inputs need the same number of rows, at least one: {rows}")
            per_row = [self._invoke(signature_name, {alias: value[row:row + 1] for alias, value in inputs.items()})
                       for row in range(count)]
            outputs = {alias: np.concatenate([row[alias] for row in per_row]) for alias in per_row[0]}
        return {alias: outputs[alias] for alias in output_aliases}

    def _invoke(self, signature_name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        key = (signature_name, tuple(sorted((alias, value.shape) for alias, value in inputs.items())))
        runner = self._take(key, signature_name)
        try:
            return runner(**{alias: np.ascontiguousarray(value) for alias, value in inputs.items()})
        except (RuntimeError, ValueError) as error:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"LiteRT could not run {signature_name}: {error}"
                               ) from None
        finally:
            self._give_back(key, runner)

    def _take(self, key: _ShapeKey, signature_name: str):
        with self._lock:
            idle = self._idle.get(key)
            if idle:
                self._idle.move_to_end(key)
                return idle.pop()
        return self._interpreter().get_signature_runner(signature_name)

    def _give_back(self, key: _ShapeKey, runner) -> None:
        with self._lock:
            self._idle.setdefault(key, []).append(runner)
            self._idle.move_to_end(key)
            while len(self._idle) > MAX_SHAPES:
                self._idle.popitem(last=False)

    def _interpreter(self) -> Interpreter:
        return Interpreter(model_content=self._model, num_threads=self._threads)


def _check_shapes(expected: dict[str, tuple[int, ...]], inputs: dict[str, np.ndarray]) -> bool:
    """Whether the inputs fit the signature's shapes (-1: any size), or fit them row by row (True: a
    conversion with a batch of 1 given several rows); INVALID_ARGUMENT when they fit neither."""
    row_by_row = False
    for alias, value in inputs.items():
        shape = expected[alias]
        if _fits(shape, value.shape):
            continue
        if shape[:1] == (1,) and value.ndim == len(shape) and _fits(shape[1:], value.shape[1:]):
            row_by_row = True
            continue
        shown = ",".join("?" if side == -1 else str(side) for side in shape)
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"input {alias} has shape [{','.join(map(str, value.shape))}]; the model takes [{shown}]",
        )
    return row_by_row


def _fits(shape: tuple[int, ...], given: tuple[int, ...]) -> bool:
    return len(given) == len(shape) and all(want in (-1, got) for want, got in zip(shape, given))
