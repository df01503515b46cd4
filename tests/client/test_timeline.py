"""Analysis without a service: which windows a recording is cut into, what each request holds, and
the timeline files written from results."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest

from capture_client.analyze import Recording, requests, window_times
from capture_client.media import MediaError
from capture_client.timeline import WindowResult, csv_columns, smooth, summary, write_outputs
from protos.emotion.v1 import emotion_pb2 as pb
from protos.emotion.v1.constants import AUDIO_SAMPLE_RATE_HZ, LABELS
from tests.client.results_factory import FACE, FUSED, VOICE, face_only_result, full_result, scores, uncertain_result
from tests.client.videos import write_video


def test_windows_end_every_hop_and_at_the_very_end():
    assert window_times(3.0, 0.5) == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    assert window_times(1.2, 0.5) == [0.5, 1.0, 1.2]
    assert window_times(0.3, 0.5) == [0.3]


def test_each_request_holds_the_two_seconds_of_audio_before_its_time_and_the_frame_shown_then(tmp_path):
    video = write_video(tmp_path / "clip.mp4", seconds=3.0, fps=10)
    audio = (np.arange(3 * AUDIO_SAMPLE_RATE_HZ) % 1000).astype(np.int16)
    recording = Recording(audio=audio, video=video, duration_s=3.0)
    times = window_times(3.0, 1.0)
    built = list(requests(recording, times, "both"))
    assert len(built) == 3
    for t, request in zip(times, built):
        end = round(t * AUDIO_SAMPLE_RATE_HZ)
        expected = audio[max(0, end - 2 * AUDIO_SAMPLE_RATE_HZ):end]
        assert request.audio.sample_rate_hz == AUDIO_SAMPLE_RATE_HZ and request.audio.encoding == pb.PCM_S16LE
        np.testing.assert_array_equal(np.frombuffer(request.audio.data, dtype=np.int16), expected)
        image = cv2.imdecode(np.frombuffer(request.image.encoded, np.uint8), cv2.IMREAD_COLOR)
        assert image.shape == (480, 640, 3)
        assert not request.options.modalities


def test_audio_only_mode_sends_no_frames_and_says_so(tmp_path, speech_samples):
    video = write_video(tmp_path / "clip.mp4", seconds=1.0, fps=10, audio=speech_samples[:AUDIO_SAMPLE_RATE_HZ])
    recording = Recording.open(video, mode="audio")
    assert recording.video is None and recording.duration_s == pytest.approx(1.0, abs=0.1)
    (request,) = requests(recording, [1.0], "audio")
    assert request.HasField("audio") and not request.HasField("image")
    assert list(request.options.modalities) == [pb.AUDIO]


def test_a_video_without_sound_analysed_for_its_voice_is_refused_with_a_reason(tmp_path):
    video = write_video(tmp_path / "silent_film.mp4", seconds=1.0, fps=10)
    with pytest.raises(MediaError, match="no audio track"):
        Recording.open(video, mode="audio")


def windows() -> list[WindowResult]:
    return [WindowResult.from_response(0.5, full_result()), WindowResult.from_response(1.0, face_only_result())]


def test_csv_has_a_row_per_window_with_statuses_and_scores_left_empty_where_none(tmp_path):
    write_outputs(windows(), tmp_path, ("csv",), source={"file": "x.mp4"})
    with open(tmp_path / "timeline.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == csv_columns()
    assert [row["time_s"] for row in rows] == ["0.500", "1.000"]
    assert rows[0]["audio_status"] == "USED" and rows[1]["audio_status"] == "NO_SPEECH"
    assert rows[0]["top_emotion"] == "happy" and rows[0]["faces"] == "1"
    for label, fused, face, voice in zip(LABELS, FUSED, FACE, VOICE):
        assert float(rows[0][f"fused_{label}"]) == pytest.approx(fused, abs=1e-4)
        assert float(rows[0][f"video_{label}"]) == pytest.approx(face, abs=1e-4)
        assert float(rows[0][f"audio_{label}"]) == pytest.approx(voice, abs=1e-4)
        assert rows[1][f"audio_{label}"] == ""


def test_json_holds_the_same_windows_with_the_label_list(tmp_path):
    write_outputs(windows(), tmp_path, ("json",), source={"file": "x.mp4", "hop_s": 0.5})
    document = json.loads((tmp_path / "timeline.json").read_text())
    assert document["labels"] == list(LABELS) and document["source"]["hop_s"] == 0.5
    first, second = document["windows"]
    assert first["time_s"] == 0.5 and first["top_emotion"] == "happy"
    assert first["fused"]["happy"] == pytest.approx(FUSED[3], abs=1e-4)
    assert second["audio"] == {"status": "NO_SPEECH", "scores": None, "confidence": None}
    assert second["video"]["faces"] == 1


def test_only_the_outputs_asked_for_are_written(tmp_path):
    written = write_outputs(windows(), tmp_path / "out", ("csv", "png"), source={"file": "x.mp4"})
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["timeline.csv", "timeline.png"]
    assert [p.name for p in written] == ["timeline.csv", "timeline.png"]
    chart = cv2.imread(str(tmp_path / "out" / "timeline.png"))
    assert chart is not None and chart.shape[1] > chart.shape[0] > 400


def test_csv_says_how_each_answer_was_fused_and_whether_it_is_a_guess(tmp_path):
    result = uncertain_result(pb.LOW_CONFIDENCE)
    write_outputs([WindowResult.from_response(0.5, result), *windows()[1:]], tmp_path, ("csv",), source={"file": "x.mp4"})
    with open(tmp_path / "timeline.csv", newline="") as file:
        guess, sure = list(csv.DictReader(file))
    assert (guess["uncertain"], guess["uncertainty_reason"], guess["fusion_method"]) == ("1", "LOW_CONFIDENCE", "weighted_sum")
    assert (sure["uncertain"], sure["uncertainty_reason"], sure["fusion_method"]) == ("0", "", "")  # an older service
    assert float(guess["video_confidence"]) == pytest.approx(FACE.max()) and sure["audio_confidence"] == ""
    assert guess["instant_top_emotion"] == "happy"
    for label, fused in zip(LABELS, FUSED):
        assert float(guess[f"instant_fused_{label}"]) == pytest.approx(fused, abs=1e-4)


def timeline(tops: list[int], hop_s: float = 0.5) -> list[WindowResult]:
    """Windows whose answers are sure (0.8) of the given labels."""
    results = []
    for i, top in enumerate(tops):
        values = np.full(len(LABELS), 0.2 / (len(LABELS) - 1))
        values[top] = 0.8
        response = pb.FuseResponse(fused=scores(values), top_emotion=LABELS[top], top_probability=0.8, uncertain_below=0.4)
        results.append(WindowResult.from_response((i + 1) * hop_s, response))
    return results


def test_smoothing_a_timeline_steadies_its_answer_and_keeps_the_instant_one():
    happy, sad = LABELS.index("happy"), LABELS.index("sad")
    instant = timeline([happy] * 4 + [sad] + [happy] * 3)
    smoothed = smooth(instant, 1.0)
    assert [w.top_emotion for w in smoothed] == ["happy"] * 8
    assert smoothed[4].instant_top_emotion == "sad" and smoothed[4].instant_top_probability == pytest.approx(0.8)
    np.testing.assert_array_equal(smoothed[4].instant_fused, instant[4].fused)
    assert [w.top_emotion for w in smooth(instant, 0.0)] == [w.top_emotion for w in instant]


def test_a_smoothed_answer_between_two_emotions_is_judged_uncertain_by_the_services_threshold():
    happy, sad = LABELS.index("happy"), LABELS.index("sad")
    smoothed = smooth(timeline([happy, sad], hop_s=0.7), 1.0)  # 0.7 s: the two weigh about the same
    assert not smoothed[0].uncertain
    assert smoothed[1].top_probability < 0.4
    assert smoothed[1].uncertain and smoothed[1].uncertainty_reason == "LOW_CONFIDENCE"


def test_disagreeing_modalities_stay_uncertain_after_smoothing():
    window = WindowResult.from_response(0.5, uncertain_result(pb.MODALITIES_DISAGREE))
    (smoothed,) = smooth([window], 1.0)
    assert smoothed.uncertain and smoothed.uncertainty_reason == "MODALITIES_DISAGREE"


def test_the_summary_counts_uncertain_answers_apart():
    line = summary([WindowResult.from_response(0.5, uncertain_result()), *windows()[1:]], took_s=1.0, duration_s=1.0)
    assert "most often: happy (1/2 windows)" in line and line.endswith("uncertain in 1")
