"""Runs a version's signatures in a TensorFlow Session, as TF Serving runs them: the path for versions without a
matching LiteRT conversion (and for comparisons, --predict_runtime=tensorflow).

The MetaGraphDef is loaded into a Session, and a Predict is one Session.run feeding the signature's input
tensors and fetching the outputs asked for (dtypes are checked before, shapes are left to the ops). This costs
about 1 ms less per call than calling the signature revived by tf.saved_model.load (docs/performance.md).
This is the only module of the server that imports TensorFlow (model_server.loader imports it when a version
runs on TensorFlow), so a server whose versions all run on LiteRT never does.
"""

from __future__ import annotations

import threading

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import config_pb2

from model_server.errors import ServingError

SERVE_TAG = "serve"


def session_config(
    intra_op: int, inter_op: int, from_file: config_pb2.ConfigProto | None = None
) -> config_pb2.ConfigProto:
    """The configuration every loaded version's session runs with: --tensorflow_session_config_file's, its
    thread pools set by the --tensorflow_*_parallelism flags when either is positive, as TF Serving does."""
    config = config_pb2.ConfigProto()
    if from_file is not None:
        config.CopyFrom(from_file)
    if intra_op > 0 or inter_op > 0:
        config.intra_op_parallelism_threads = max(intra_op, 0)
        config.inter_op_parallelism_threads = max(inter_op, 0)
    return config


class TfSessionRuntime:
    """Executes signatures of one SavedModel; safe to call from many threads at once."""

    def __init__(self, export_dir: str, signature_defs: dict, config: config_pb2.ConfigProto | None = None) -> None:
        """`signature_defs` are the version's, by name (model_server.wire messages: only their tensor names are
        read)."""
        self._signature_defs = signature_defs
        graph = tf.Graph()
        self._session = tf.compat.v1.Session(graph=graph, config=config)
        try:
            with graph.as_default():
                tf.compat.v1.saved_model.load(self._session, [SERVE_TAG], export_dir)
        except tf.errors.OpError as error:
            raise ServingError.from_canonical_code(error.error_code, error.message) from None
        self._callables: dict[tuple, object] = {}
        self._lock = threading.Lock()

    def run(self, signature_name: str, inputs: dict[str, np.ndarray], output_aliases: list[str]
            ) -> dict[str, np.ndarray]:
        """One Session.run of the signature: inputs and outputs by their aliases."""
        feed_aliases, fetch_aliases = tuple(sorted(inputs)), tuple(sorted(output_aliases))
        run = self._callable(signature_name, feed_aliases, fetch_aliases)
        try:
            values = run(*(inputs[alias] for alias in feed_aliases))
        except tf.errors.OpError as error:
            raise ServingError.from_canonical_code(error.error_code, error.message) from None
        return dict(zip(fetch_aliases, values))

    def _callable(self, signature_name: str, feed_aliases: tuple[str, ...], fetch_aliases: tuple[str, ...]):
        """A callable of the C++ Session (Session::MakeCallable) per set of feeds and fetches. Unlike
        Session.run it does no per-call Python work, and in particular no feed shape check, which TF
        Serving's Session::Run does not make either (the ops check shapes, with their own messages).
        Session.make_callable(fetches, feed_list) would wrap Session.run; the options form is the one
        that reaches the C++ API (Keras' TF1 backend has long used it the same way)."""
        key = (signature_name, feed_aliases, fetch_aliases)
        with self._lock:
            run = self._callables.get(key)
            if run is None:
                signature = self._signature_defs[signature_name]
                options = config_pb2.CallableOptions(
                    feed=[signature.inputs[alias].name for alias in feed_aliases],
                    fetch=[signature.outputs[alias].name for alias in fetch_aliases],
                )
                run = self._session._make_callable_from_options(options)  # noqa: SLF001 (see above)
                self._callables[key] = run
        return run
