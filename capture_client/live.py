"""The live command's loop: start capture and streaming, redraw the view until the user quits."""

from __future__ import annotations

import logging
import time

from capture_client.session import LiveSession
from capture_client.terminal import TerminalView, terminal_text
from capture_client.view import CANVAS, render
from capture_client.window import Window

log = logging.getLogger("capture_client")

WINDOW_REFRESH_S = 1 / 30
TERMINAL_REFRESH_S = 0.25
# After file sources run out, wait this long for the results of their last input.
LAST_RESULTS_GRACE_S = 1.5


def run_live(session: LiveSession, use_window: bool, duration_s: float | None = None) -> int:
    """Returns the process exit code: 0 when the user stopped or the sources ended, 1 when the client gave up."""
    window = Window("Emotion capture", (CANVAS.w, CANVAS.h)) if use_window else None
    terminal = None if use_window else TerminalView()
    session.start()
    started = time.monotonic()
    ended_at = None
    try:
        while True:
            result, state = session.snapshot()
            if window is not None:
                window.show(render(session.latest_frame(), result, state))
                if window.closed:
                    return 0
            else:
                terminal.show(terminal_text(result, state))
            if session.failed:
                log.error("stopped: %s", session.failed)
                return 1
            now = time.monotonic()
            if session.sources_ended:
                ended_at = ended_at or now
                if now - ended_at > LAST_RESULTS_GRACE_S:
                    return 0
            if duration_s is not None and now - started >= duration_s:
                return 0
            time.sleep(WINDOW_REFRESH_S if window is not None else TERMINAL_REFRESH_S)
    except KeyboardInterrupt:
        return 0
    finally:
        session.stop()
        if window is not None:
            window.close()
