"""The live view without a display: the same bars as text, redrawn in place."""

from __future__ import annotations

import sys
from typing import TextIO

from capture_client.modes import uses_audio, uses_video
from capture_client.results import face_status_text, fusion_text, probabilities, uncertainty_text, voice_status_text
from capture_client.state import ViewState
from protos.emotion.v1 import emotion_pb2 as pb
from protos.emotion.v1.constants import LABELS

BAR_WIDTH = 14
_EIGHTHS = " ▏▎▍▌▋▊▉"
_LABEL_WIDTH = 10
_COLUMN_WIDTH = BAR_WIDTH + 7


def text_bar(probability: float, width: int = BAR_WIDTH) -> str:
    """A horizontal bar of `width` characters, in eighths of a character."""
    eighths = round(max(0.0, min(1.0, probability)) * width * 8)
    bar = "█" * (eighths // 8) + (_EIGHTHS[eighths % 8] if eighths % 8 else "")
    return bar.ljust(width)


def terminal_text(result: pb.FuseResponse | None, state: ViewState) -> str:
    """The view as lines of text: connection, fused emotion, three bar charts, drop counts."""
    lines = [f"emotion-capture  {state.target}  [{state.connection}]  {state.results_per_second:.1f} results/s"]
    if result is not None and result.uncertain:
        lines.append(
            f"fused emotion: uncertain ({uncertainty_text(result)}); best guess {result.top_emotion} "
            f"{result.top_probability:.0%}  ({fusion_text(result)})"
        )
    elif result is not None and result.top_emotion:
        lines.append(f"fused emotion: {result.top_emotion.upper()} {result.top_probability:.0%}  ({fusion_text(result)})")
    else:
        lines.append("fused emotion: none " + ("(waiting for results)" if result is None else "(no face and no speech)"))
    if state.stale and result is not None:
        lines[-1] += f"  - last result {state.result_age_s:.0f} s ago"

    columns = [("Fused", probabilities(result.fused) if result else None, "")]
    if uses_video(state.mode):
        columns.append(("Face", probabilities(result.video.scores) if result else None, face_status_text(result)))
    if uses_audio(state.mode):
        columns.append(("Voice", probabilities(result.audio.scores) if result else None, voice_status_text(result)))
    header = " " * _LABEL_WIDTH + "".join(
        (f"{title} ({status})" if status else title).ljust(_COLUMN_WIDTH)[:_COLUMN_WIDTH] for title, _, status in columns
    )
    lines.append(header.rstrip())
    for index, label in enumerate(LABELS):
        row = label.ljust(_LABEL_WIDTH)
        for _, scores, _ in columns:
            row += (text_bar(0.0) + "    -" if scores is None else text_bar(scores[index]) + f"{scores[index]:>5.0%}") + "  "
        lines.append(row.rstrip())

    lines.append("; ".join(state.dropped_input()))
    lines.append(state.notice)
    return "\n".join(lines)


class TerminalView:
    """Writes each new text over the previous one on a terminal; appends blocks when output is a file or pipe."""

    def __init__(self, stream: TextIO = sys.stdout):
        self._stream = stream
        self._in_place = stream.isatty()
        self._lines_shown = 0
        self._last = ""

    def show(self, text: str) -> None:
        if text == self._last:
            return
        self._last = text
        if self._in_place:
            # Cursor up to the first line of the previous text, then rewrite each line and clear its rest.
            up = f"\x1b[{self._lines_shown}F" if self._lines_shown else ""
            self._stream.write(up + "".join(f"{line}\x1b[K\n" for line in text.split("\n")) + "\x1b[J")
        else:
            self._stream.write(text + "\n\n")
        self._stream.flush()
        self._lines_shown = text.count("\n") + 1
