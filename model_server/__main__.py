"""Command line of the development model server, with tensorflow_model_server's flag names.

    python -m model_server --port=8500 --model_name=audio --model_base_path=/abs/path/model_repository/audio
    python -m model_server --port=8500 --model_config_file=/abs/path/models.config

TensorFlow is imported only when a version runs on it (no matching LiteRT conversion, or --predict_runtime=
tensorflow) or to read --tensorflow_session_config_file; a server whose versions all run on LiteRT never does.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

# TensorFlow, when a version runs on it, imports Keras eagerly (and Keras scikit-learn and SciPy) so that Keras
# objects in a SavedModel can be revived. This server loads SavedModels as TF Serving does, by their signatures,
# which need no Keras:
# TF Serving has no Keras at all. Without it a model server needs less memory and starts sooner
# (docs/performance.md).
sys.modules.setdefault("keras", None)

from model_server.batching import BatchingOptions, read_batching_parameters_file  # noqa: E402
from model_server.config import (  # noqa: E402
    ConfigError, read_model_config_file, read_session_config_file, single_model_config,
)
from model_server.loader import AUTO_RUNTIME, RUNTIMES, SessionSettings  # noqa: E402
from model_server.server import ServerOptions, StartupError, serve  # noqa: E402
from model_server.tls import read_ssl_config_file  # noqa: E402

log = logging.getLogger("model_server")


def _flag_bool(text: str) -> bool:
    """tensorflow_model_server's boolean flag values."""
    value = text.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m model_server",
        description="TensorFlow Serving's gRPC API (Predict, GetModelMetadata, GetModelStatus) over a model "
        "repository laid out as <base_path>/<version>/saved_model.pb.",
    )
    parser.add_argument("--port", type=int, default=8500, help="gRPC port to listen on")
    parser.add_argument("--model_name", default="default", help="name of the model (ignored with --model_config_file)")
    parser.add_argument("--model_base_path", default="", help="absolute path holding the model's version directories")
    parser.add_argument(
        "--model_config_file", default="",
        help="text-format ModelServerConfig listing the models to serve (then --model_name and --model_base_path "
        "are ignored)",
    )
    parser.add_argument(
        "--model_config_file_poll_wait_seconds", type=int, default=0,
        help="interval between re-reads of --model_config_file, to add, remove or re-configure models while "
        "serving (0: read it only at start-up)",
    )
    parser.add_argument(
        "--file_system_poll_wait_seconds", type=int, default=1,
        help="interval between looks for new model versions; a negative value looks only at start-up",
    )
    # One thread each is the right size for one small model beside the fusion service on two cores: more
    # threads per op would only contend for them. A server of several models wants an op thread per model
    # (scripts/local_stack.py passes it), so that their requests run side by side. 0 lets TensorFlow
    # choose, as tensorflow_model_server does.
    parser.add_argument("--tensorflow_intra_op_parallelism", type=int, default=1,
                        help="threads used within one op (0: TensorFlow chooses); also the threads of each LiteRT "
                        "interpreter (0: LiteRT chooses)")
    parser.add_argument("--tensorflow_inter_op_parallelism", type=int, default=1,
                        help="threads used to run independent ops (0: TensorFlow chooses)")
    parser.add_argument(
        "--tensorflow_session_config_file", default="",
        help="text-format TensorFlow ConfigProto for every model's session; the two parallelism flags above "
        "override its thread pools",
    )
    parser.add_argument(
        "--enable_model_warmup", type=_flag_bool, nargs="?", const=True, default=True,
        help="replay assets.extra/tf_serving_warmup_requests when a version loads",
    )
    parser.add_argument(
        "--enable_batching", type=_flag_bool, nargs="?", const=True, default=False,
        help="batch concurrent Predicts of the same model version and signature into one run",
    )
    parser.add_argument(
        "--batching_parameters_file", default="",
        help="text-format BatchingParameters (max_batch_size, batch_timeout_micros, max_enqueued_batches, "
        "num_batch_threads, allowed_batch_sizes, pad_variable_length_inputs) instead of the defaults",
    )
    parser.add_argument(
        "--ssl_config_file", default="",
        help="text-format SSLConfig (server_key, server_cert, custom_ca, client_verify): serve gRPC over TLS",
    )
    # Not a tensorflow_model_server flag: TF Serving always runs a Session.
    parser.add_argument(
        "--predict_runtime", choices=RUNTIMES, default=AUTO_RUNTIME,
        help="development server only: 'auto' runs Predict on LiteRT for every version whose LiteRT conversion "
        "(assets.extra/litert/) matches its SavedModel, on TensorFlow otherwise; 'tensorflow' always runs a "
        "TensorFlow Session (to compare the two)",
    )
    parser.add_argument("--grpc_max_threads", type=int, default=4 * (os.cpu_count() or 1),
                        help="most requests handled at once")
    return parser.parse_args(argv)


def _batching_options(args: argparse.Namespace) -> BatchingOptions | None:
    """tensorflow_model_server's reading of the two batching flags."""
    if not args.enable_batching:
        if args.batching_parameters_file:
            raise ConfigError(
                "server_options.batching_parameters_file is set without setting server_options.enable_batching "
                "to true."
            )
        return None
    if args.batching_parameters_file:
        return read_batching_parameters_file(args.batching_parameters_file)
    return BatchingOptions()


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s.%(msecs)03d %(levelname)s %(name)s] %(message)s", datefmt="%H:%M:%S"
    )
    args = parse_args(argv)
    try:
        if args.model_config_file:
            models = read_model_config_file(args.model_config_file)
        elif args.model_base_path:
            log.info("Building single TensorFlow model file config: model_name: %s model_base_path: %s",
                     args.model_name, args.model_base_path)
            models = single_model_config(args.model_name, args.model_base_path)
        else:
            raise ConfigError("Both server_options.model_base_path and server_options.model_config_file are empty!")
        credentials = read_ssl_config_file(args.ssl_config_file) if args.ssl_config_file else None
        batching = _batching_options(args)
        intra_op, inter_op = args.tensorflow_intra_op_parallelism, args.tensorflow_inter_op_parallelism
        session_file = args.tensorflow_session_config_file
        session = SessionSettings(intra_op, inter_op, read_session_config_file(session_file) if session_file else None)
        serve(ServerOptions(
            port=args.port,
            models=models,
            file_system_poll_wait_seconds=args.file_system_poll_wait_seconds,
            model_config_file=args.model_config_file,
            model_config_file_poll_wait_seconds=args.model_config_file_poll_wait_seconds,
            enable_model_warmup=args.enable_model_warmup,
            session=session,
            predict_runtime=args.predict_runtime,
            litert_threads=intra_op,
            batching=batching,
            grpc_max_threads=args.grpc_max_threads,
            credentials=credentials,
        ))
    except (ConfigError, StartupError) as error:
        print(f"Failed to start server. Error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
