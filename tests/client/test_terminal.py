"""The terminal view: the same bars as text, redrawn in place on a terminal."""

from __future__ import annotations

import io

from capture_client.terminal import BAR_WIDTH, TerminalView, terminal_text, text_bar
from protos.emotion.v1 import emotion_pb2 as pb
from protos.emotion.v1.constants import LABELS
from tests.client.results_factory import FACE, FUSED, VOICE, face_only_result, full_result, uncertain_result
from tests.client.test_view import view_state


def test_text_bars_are_as_long_as_the_probability_in_eighths_of_a_character():
    assert text_bar(0.0) == " " * BAR_WIDTH
    assert text_bar(1.0) == "█" * BAR_WIDTH
    assert text_bar(0.5) == "█" * (BAR_WIDTH // 2) + " " * (BAR_WIDTH - BAR_WIDTH // 2)
    assert text_bar(1 / 16, width=2) == "▏ "  # one eighth of two characters
    assert all(len(text_bar(p / 100)) == BAR_WIDTH for p in range(101))


def bar_length(cell: str) -> float:
    """Characters of bar in a cell, counting partial blocks in eighths."""
    eighths = " ▏▎▍▌▋▊▉█"
    return sum(eighths.index(c) for c in cell if c in eighths) / 8


def row_cells(text: str, label: str) -> list[str]:
    row = next(line for line in text.splitlines() if line.startswith(label.ljust(10)))
    return [row[10 + i * (BAR_WIDTH + 7):][:BAR_WIDTH] for i in range(3)]


def test_rows_hold_fused_face_and_voice_bars_with_percentages():
    text = terminal_text(full_result(), view_state())
    assert "fused emotion: HAPPY 58%  (face 70% + voice 30%)" in text
    header = next(line for line in text.splitlines() if "Fused" in line and "Face" in line)
    assert header.index("Fused") < header.index("Face (1 face)") < header.index("Voice (speech)")
    for index, label in enumerate(LABELS):
        fused, face, voice = row_cells(text, label)
        for cell, values in ((fused, FUSED), (face, FACE), (voice, VOICE)):
            assert abs(bar_length(cell) - values[index] * BAR_WIDTH) <= 1 / 16
    happy_row = next(line for line in text.splitlines() if line.startswith("happy"))
    assert f"{FUSED[3]:.0%}" in happy_row and "70%" in happy_row and "30%" in happy_row


def test_statuses_drops_and_connection_notice_are_shown():
    state = view_state(frames_dropped_client=3, frames_dropped_service=12, audio_dropped_seconds=0.4,
                       connection="reconnecting", notice="lost the service (UNAVAILABLE); reconnecting in 1.0 s (attempt 2)")
    text = terminal_text(face_only_result(), state)
    assert "Voice (no speech)" in text
    assert "frames dropped here: 3, skipped by the service: 12" in text and "audio dropped: 0.4 s" in text
    assert "[reconnecting]" in text and "reconnecting in 1.0 s (attempt 2)" in text
    voice_cells = [row_cells(text, label)[2] for label in LABELS]
    assert all(bar_length(cell) == 0 for cell in voice_cells)


def test_single_modality_modes_show_only_their_column():
    audio_only = terminal_text(full_result(), view_state(mode="audio"))
    assert "Voice" in audio_only and "Face" not in audio_only and "frames dropped" not in audio_only
    video_only = terminal_text(full_result(), view_state(mode="video"))
    assert "Face" in video_only and "Voice" not in video_only and "audio dropped" not in video_only


def test_before_the_first_result_it_says_it_is_waiting():
    text = terminal_text(None, view_state(connection="connecting", notice="connecting to localhost:50051", result_age_s=None))
    assert "waiting for results" in text and "[connecting]" in text


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_each_view_is_written_over_the_previous_one():
    terminal = FakeTerminal()
    view = TerminalView(terminal)
    first = terminal_text(None, view_state(result_age_s=None))
    view.show(first)
    written = len(terminal.getvalue())
    view.show(terminal_text(full_result(), view_state()))
    update = terminal.getvalue()[written:]
    # The cursor goes back up over every line of the first view, and each line is cleared to its end.
    assert update.startswith(f"\x1b[{first.count(chr(10)) + 1}F")
    assert "HAPPY" in update and update.count("\x1b[K") == update.count("\n")


def test_into_a_file_or_pipe_views_are_appended_without_control_codes():
    output = io.StringIO()
    view = TerminalView(output)
    view.show(terminal_text(full_result(), view_state()))
    view.show(terminal_text(face_only_result(), view_state()))
    assert "\x1b" not in output.getvalue() and output.getvalue().count("fused emotion") == 2


def test_an_uncertain_answer_is_shown_as_a_guess_with_its_reason_and_the_fusion_method():
    line = terminal_text(uncertain_result(), view_state()).splitlines()[1]
    assert line == "fused emotion: uncertain (face and voice disagree); best guess happy 58%  (weighted sum: face 70% + voice 30%)"
    assert "HAPPY" not in line
    low = terminal_text(uncertain_result(pb.LOW_CONFIDENCE), view_state()).splitlines()[1]
    assert "uncertain (low confidence)" in low
