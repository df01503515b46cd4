"""The web gateway: serves the page and bridges each of its WebSockets to one StreamFuse call.

Checks what browsers send before any of it reaches the service: the WebSocket's Origin (a page on another site
must not use a visitor's camera through us), the size of each message, how fast frames and audio come, and the
protocol itself. A stream that breaks a rule is closed with a reason; the others go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web

from capture_client.connection import Connection
from capture_client.web.bridge import StreamBridge
from capture_client.web.protocol import (
    CLOSE_POLICY,
    CLOSE_UNSUPPORTED,
    MAX_AUDIO_CHUNK_S,
    MAX_FRAME_BYTES,
    ProtocolError,
    RateLimit,
    parse_config,
    parse_media,
    status_message,
)
from protos.emotion.v1 import emotion_pb2_grpc
from protos.emotion.v1.constants import AUDIO_SAMPLE_RATE_HZ, LABELS

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
CONFIG_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Limits:
    max_frames_per_s: float = 30.0
    max_audio_speed: float = 1.5  # audio may arrive this many times faster than real time, on average
    burst_s: float = 2.0  # seconds of either that may come at once (a tab that was in the background)
    # The fusion service sees the gateway as one client (its --max-streams-per-client, 8 by default): no more here.
    max_streams: int = 8


@dataclass(frozen=True)
class GatewayConfig:
    connection: Connection
    limits: Limits = Limits()
    allowed_origins: frozenset[str] = frozenset()  # besides the page's own origin


def origin_allowed(origin: str | None, host: str | None, allowed: frozenset[str]) -> bool:
    """Same origin as the page (scheme aside: a TLS-terminating proxy may change it), or one allowed by name.

    No Origin header: not a browser (browsers always send one on a WebSocket), so not a page of another site.
    """
    if origin is None:
        return True
    if origin in allowed:
        return True
    return host is not None and urlsplit(origin).netloc == host


class Gateway:
    def __init__(self, config: GatewayConfig):
        self._config = config
        self._channel = None
        self._stub: emotion_pb2_grpc.EmotionFusionStub | None = None
        self._streams: set[asyncio.Task] = set()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self._page)
        app.router.add_get("/ws", self._websocket)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/api/constants", self._constants)
        app.router.add_static("/static/", STATIC_DIR, show_index=False)
        app.on_startup.append(self._open_channel)
        app.on_shutdown.append(self._close_streams)
        app.on_cleanup.append(self._close_channel)
        return app

    async def _open_channel(self, _: web.Application) -> None:
        self._channel = self._config.connection.open_aio_channel()
        self._channel.get_state(try_to_connect=True)  # connect now, not on the first page's stream
        self._stub = emotion_pb2_grpc.EmotionFusionStub(self._channel)

    async def _close_streams(self, _: web.Application) -> None:
        for task in list(self._streams):
            task.cancel()

    async def _close_channel(self, _: web.Application) -> None:
        if self._channel is not None:
            await self._channel.close()

    async def _page(self, _: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    async def _constants(self, _: web.Request) -> web.Response:
        """The API's fixed values the page needs, so that it repeats none of them."""
        return web.json_response({
            "labels": list(LABELS),
            "audio_sample_rate_hz": AUDIO_SAMPLE_RATE_HZ,
            "max_audio_chunk_s": MAX_AUDIO_CHUNK_S,
        })

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "streams": len(self._streams)})

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if not origin_allowed(origin, request.host, self._config.allowed_origins):
            log.warning("refused a WebSocket from origin %s", origin)
            raise web.HTTPForbidden(text=f"origin {origin} may not open streams here; see --allowed-origin")
        if len(self._streams) >= self._config.limits.max_streams:
            raise web.HTTPServiceUnavailable(text="too many streams on this gateway; try again later")
        # Protocol frames are checked by size here (aiohttp closes with 1009 above it), contents below.
        ws = web.WebSocketResponse(max_msg_size=MAX_FRAME_BYTES + 64, heartbeat=20)
        await ws.prepare(request)
        task = asyncio.current_task()
        self._streams.add(task)
        try:
            await self._serve_stream(ws)
        except ProtocolError as error:
            log.info("closing a stream: %s", error)
            await ws.close(code=error.code, message=str(error).encode()[:120])
        finally:
            self._streams.discard(task)
        return ws

    async def _serve_stream(self, ws: web.WebSocketResponse) -> None:
        try:
            first = await ws.receive(timeout=CONFIG_TIMEOUT_S)
        except asyncio.TimeoutError:
            raise ProtocolError(CLOSE_POLICY, f"no settings within {CONFIG_TIMEOUT_S:g} s") from None
        if first.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
            return
        if first.type != WSMsgType.TEXT:
            raise ProtocolError(CLOSE_POLICY, 'the first message must be the settings, {"type": "config", ...}')
        config = parse_config(first.data)
        await ws.send_str(status_message("connecting", "connecting to the fusion service"))
        bridge = StreamBridge(config, self._stub, self._config.connection.metadata, ws.send_str)
        service = asyncio.create_task(bridge.run())
        receiver = asyncio.create_task(self._receive(ws, bridge))
        try:
            done, _ = await asyncio.wait({service, receiver}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # a ProtocolError from either side closes the WebSocket with its reason
        finally:
            for task in (service, receiver):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, ProtocolError):
                    await task

    async def _receive(self, ws: web.WebSocketResponse, bridge: StreamBridge) -> None:
        limits = self._config.limits
        frames = RateLimit(limits.max_frames_per_s, limits.max_frames_per_s * limits.burst_s)
        audio_rate = limits.max_audio_speed * AUDIO_SAMPLE_RATE_HZ * 2  # bytes per second
        audio = RateLimit(audio_rate, audio_rate * limits.burst_s)
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                raise ProtocolError(CLOSE_POLICY, "settings come once, first; then only binary media messages")
            if message.type != WSMsgType.BINARY:
                continue
            request = parse_media(message.data)
            if request.HasField("frame") and not frames.allow():
                raise ProtocolError(CLOSE_POLICY, f"more than {limits.max_frames_per_s:g} frames per second")
            if request.HasField("audio") and not audio.allow(len(request.audio.data)):
                raise ProtocolError(CLOSE_POLICY, "audio is arriving faster than real time")
            bridge.push(request)
