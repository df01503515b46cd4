"""`emotion-web`: serve the live page and bridge its streams to the fusion service.

    python -m capture_client.web [--port 8080] [--target localhost:50051] [--tls-cert CERT --tls-key KEY]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import ssl
import sys
from pathlib import Path

from aiohttp import web

from capture_client.connection import add_connection_arguments, connection_from_args
from capture_client.web.gateway import Gateway, GatewayConfig, Limits

DEFAULT_PORT = 8080


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emotion-web",
        description="Serve the live emotion page: open it in a browser, allow the camera and microphone. "
                    "Browsers allow cameras only on https:// or localhost: to use it from another device, "
                    "serve it over HTTPS with --tls-cert and --tls-key and --host 0.0.0.0.",
    )
    parser.add_argument("--host", default=os.environ.get("EMOTION_WEB_HOST", "localhost"),
                        help="address to listen on (default: $EMOTION_WEB_HOST or %(default)s; 0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("EMOTION_WEB_PORT", DEFAULT_PORT)),
                        help="port of the page (default: $EMOTION_WEB_PORT or %(default)s; 0: any free port)")
    parser.add_argument("--tls-cert", type=Path, help="PEM certificate chain: serve the page over HTTPS (with --tls-key)")
    parser.add_argument("--tls-key", type=Path, help="PEM private key of --tls-cert")
    parser.add_argument("--allowed-origin", action="append", default=[], metavar="ORIGIN",
                        help="another origin (e.g. https://example.org) whose pages may open streams; repeatable")
    parser.add_argument("--max-streams", type=int, default=int(os.environ.get("EMOTION_WEB_MAX_STREAMS", Limits.max_streams)),
                        help="open streams at most (default: $EMOTION_WEB_MAX_STREAMS or %(default)s); the fusion "
                             "service counts them all as this gateway's, so raise its --max-streams-per-client with it")
    parser.add_argument("--max-fps", type=float, default=Limits.max_frames_per_s,
                        help="frames per second one stream may send on average (default: %(default)s)")
    add_connection_arguments(parser)
    return parser


def tls_context(cert: Path | None, key: Path | None, parser: argparse.ArgumentParser) -> ssl.SSLContext | None:
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        parser.error("--tls-cert and --tls-key go together: give both, or neither")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as error:
        parser.error(f"cannot use {cert} / {key} as the page's certificate and key: {error}")
    return context


async def serve(gateway: Gateway, host: str, port: int, ssl_context: ssl.SSLContext | None) -> None:
    """Run until SIGINT/SIGTERM; prints the page's address (with the port actually bound) once listening."""
    runner = web.AppRunner(gateway.app(), handle_signals=True)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    await site.start()
    bound_port = runner.addresses[0][1]  # the real port when asked for 0
    scheme = "https" if ssl_context else "http"
    shown_host = "localhost" if host in ("0.0.0.0", "::", "") else host
    print(f"emotion page at {scheme}://{shown_host}:{bound_port}/", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    arguments = parser()
    args = arguments.parse_args(argv)
    ssl_context = tls_context(args.tls_cert, args.tls_key, arguments)
    config = GatewayConfig(
        connection=connection_from_args(arguments, args),
        limits=Limits(max_frames_per_s=args.max_fps, max_streams=args.max_streams),
        allowed_origins=frozenset(args.allowed_origin),
    )
    try:
        asyncio.run(serve(Gateway(config), args.host, args.port, ssl_context))
    except (KeyboardInterrupt, web.GracefulExit):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
