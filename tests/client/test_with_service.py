"""The client against the real system (development model servers and the fusion service, on free ports):
the live loop with a video file as camera and speech as microphone, analyze, and reconnecting after the
fusion service restarts."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
import soundfile

from capture_client.__main__ import main
from capture_client.analyze import window_times
from capture_client.connection import Backoff, Connection
from capture_client.live import run_live
from capture_client.session import LiveSession
from capture_client.timeline import csv_columns
from capture_client.view import CANVAS, bar_rect
from capture_client.window import Window
from protos.emotion.v1 import emotion_pb2 as pb
from protos.emotion.v1.constants import AUDIO_SAMPLE_RATE_HZ, LABELS
from scripts.local_stack import ROOT
from testkit.waiting import wait_for


def record_results(session: LiveSession) -> list[pb.StreamResponse]:
    """Every response the session receives, in order (wrapping its state's handler)."""
    received = []
    handler = session.state.on_response

    def recording(response):
        received.append(response)
        handler(response)

    session.state.on_response = recording
    return received


def test_live_view_with_a_video_file_as_camera_and_speech_as_microphone_shows_results(
    stack, talking_face_video, speech_wav, monkeypatch
):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    shown = []
    monkeypatch.setattr(Window, "show", lambda self, image, _show=Window.show: (shown.append(image), _show(self, image)))
    session = LiveSession(Connection(stack.fusion_target), "both", camera_source=str(talking_face_video),
                          microphone_device=str(speech_wav))
    received = record_results(session)

    assert run_live(session, use_window=True, duration_s=5.0) == 0

    assert len(received) >= 5
    results = [r.result for r in received]
    assert any(r.audio.status == pb.USED for r in results), [r.audio.reason for r in results]
    with_face = [r for r in results if r.video.status == pb.USED]
    assert with_face, [r.video.reason for r in results]
    for result in with_face:
        box = result.faces[result.primary_face].box
        assert 0 <= box.x and box.x + box.width <= 640 and 0 <= box.y and box.y + box.height <= 480
    assert all(r.top_emotion in LABELS for r in results if r.fused)
    assert [r.frame_sequence for r in received] == sorted(r.frame_sequence for r in received)
    # The window showed the results: the fused top emotion's bar is filled in the last view drawn.
    last = results[-1]
    view = shown[-1]
    assert view.shape == (CANVAS.h, CANVAS.w, 3)
    if last.top_emotion:
        bar = bar_rect("fused", last.top_emotion)
        assert np.any(view[bar.y + bar.h // 2, bar.x:bar.x + bar.w] != view[bar.y + bar.h // 2, bar.x + bar.w - 1])


def test_the_command_in_a_terminal_streams_video_only_and_prints_the_bars(stack, talking_face_video):
    command = [sys.executable, "-m", "capture_client", "--no-window", "--mode", "video", "--camera", str(talking_face_video),
               "--target", stack.fusion_target, "--duration", "4"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    views = [block for block in done.stdout.split("\n\n") if block.strip()]
    assert any("[connected]" in v and "Face (1 face)" in v for v in views), done.stdout[-2000:]
    assert all("Voice" not in v for v in views)
    last = views[-1].splitlines()
    assert last[1].startswith("fused emotion: ") and [line.split()[0] for line in last[3:10]] == list(LABELS)


def read_csv(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def test_analyze_writes_a_timeline_of_every_window_and_a_chart(stack, talking_face_video, tmp_path, capsys):
    out = tmp_path / "analysis"
    assert main(["analyze", str(talking_face_video), "--out", str(out), "--target", stack.fusion_target]) == 0
    assert "6.0 s analysed" in capsys.readouterr().out

    assert sorted(p.name for p in out.iterdir()) == ["timeline.csv", "timeline.json", "timeline.png"]
    rows = read_csv(out / "timeline.csv")
    assert list(rows[0]) == csv_columns()
    times = [float(row["time_s"]) for row in rows]
    assert times == pytest.approx(window_times(times[-1], 0.5), abs=1e-3) and times[-1] == pytest.approx(6.0, abs=0.05)
    # The photo moves, so the face is found in most windows; the speech runs through the whole clip.
    assert sum(row["video_status"] == "USED" for row in rows) >= len(rows) / 2
    assert sum(row["audio_status"] == "USED" for row in rows) >= len(rows) / 2
    for row in rows:
        if row["top_emotion"]:
            fused = [float(row[f"fused_{label}"]) for label in LABELS]
            assert sum(fused) == pytest.approx(1.0, abs=1e-3)
            assert row["top_emotion"] == LABELS[int(np.argmax(fused))]
        if row["video_status"] == "USED":
            assert int(row["faces"]) >= 1 and row["video_happy"] != ""
        else:
            assert row["video_happy"] == ""

    document = json.loads((out / "timeline.json").read_text())
    assert [w["time_s"] for w in document["windows"]] == pytest.approx(times, abs=1e-3)
    assert [w["video"]["status"] for w in document["windows"]] == [row["video_status"] for row in rows]
    chart = cv2.imread(str(out / "timeline.png"))
    assert chart is not None and chart.shape[1] > chart.shape[0]


def test_analyze_of_an_audio_file_alone_writes_only_what_was_asked(stack, speech_wav, tmp_path):
    out = tmp_path / "voice"
    assert main(["analyze", str(speech_wav), "--out", str(out), "--outputs", "json", "--hop", "1",
                 "--target", stack.fusion_target, "--no-progress"]) == 0
    assert [p.name for p in out.iterdir()] == ["timeline.json"]
    windows = json.loads((out / "timeline.json").read_text())["windows"]
    assert len(windows) == 6
    assert all(w["video"]["status"] == "ABSENT" for w in windows)
    assert any(w["audio"]["status"] == "USED" for w in windows)


def test_analyze_takes_the_audio_from_a_separate_file(stack, tmp_path, speech_wav):
    from tests.client.videos import write_video

    silent = write_video(tmp_path / "silent.mp4", seconds=3.0)
    out = tmp_path / "dubbed"
    assert main(["analyze", str(silent), "--audio", str(speech_wav), "--out", str(out), "--outputs", "csv",
                 "--target", stack.fusion_target, "--no-progress"]) == 0
    rows = read_csv(out / "timeline.csv")
    assert len(rows) == 12  # the 6 s of speech outlast the 3 s of video
    assert any(row["audio_status"] == "USED" for row in rows)
    assert all(row["video_status"] == "ABSENT" for row in rows if float(row["time_s"]) > 3.0)


# Last in this module: it restarts the fusion service.
def test_the_live_client_reconnects_after_the_service_restarts_and_says_so(stack, tmp_path, speech_samples):
    long_speech = tmp_path / "long_speech.wav"
    soundfile.write(long_speech, np.tile(speech_samples, 10), AUDIO_SAMPLE_RATE_HZ, subtype="PCM_16")
    session = LiveSession(Connection(stack.fusion_target), "audio", microphone_device=str(long_speech),
                          backoff=Backoff(initial_s=0.2, max_s=1.0))
    notices = []
    set_connection = session.state.set_connection
    session.state.set_connection = lambda state, notice, *level: (notices.append((state, notice)), set_connection(state, notice, *level))
    session.start()
    try:
        wait_for(lambda: session.state.results_received > 0, "a first result", timeout_s=20)
        stack.stop("fusion")
        wait_for(lambda: session.state.connection == "reconnecting", "the client to reconnect", timeout_s=20)
        stack.start_fusion()
        stack.wait_serving(timeout_s=60)
        before = session.state.results_received
        wait_for(lambda: session.state.results_received > before, "results after the restart", timeout_s=30)
        assert session.state.connection == "connected"
    finally:
        session.stop()
    states = [state for state, _ in notices]
    assert states[0] == "connected" and "reconnecting" in states and states[-1] == "connected"
    reconnecting = [notice for state, notice in notices if state == "reconnecting"]
    assert all(f"reconnecting to {stack.fusion_target} in" in notice for notice in reconnecting)
