"""The live view's drawing, on synthetic frames and hand-made results: no screen needed."""

from __future__ import annotations

import numpy as np
import pytest

from capture_client.palette import emotion_bgr
from capture_client.state import ViewState
from capture_client.view import (
    CANVAS, ICON_CENTER, ICON_RADIUS, PANEL_BACKGROUND, STATUS_BAR, TRACK, bar_rect, draw_emotion_icon, frame_placement,
    render,
)
from protos.emotion.v1.constants import LABELS
from tests.client.results_factory import FACE, FUSED, VOICE, face, face_only_result, full_result, uncertain_result

GREY = 128


def view_state(**changes) -> ViewState:
    values = dict(target="localhost:50051", mode="both", connection="connected", notice="connected to localhost:50051",
                  results_per_second=5.0, camera_fps=30.0, result_age_s=0.1)
    values.update(changes)
    return ViewState(**values)


def grey_frame(width: int = 640, height: int = 480) -> np.ndarray:
    return np.full((height, width, 3), GREY, dtype=np.uint8)


def canvas_point(frame_shape, x: float, y: float) -> tuple[int, int]:
    scale, ox, oy = frame_placement(frame_shape)
    return round(ox + x * scale), round(oy + y * scale)


@pytest.mark.parametrize("frame", [grey_frame(), grey_frame(1920, 1080), grey_frame(320, 480), None])
@pytest.mark.parametrize("result", [full_result(), face_only_result(), None])
@pytest.mark.parametrize("mode", ["both", "audio", "video"])
def test_view_is_one_image_of_the_canvas_size_whatever_it_shows(frame, result, mode):
    image = render(frame, result, view_state(mode=mode))
    assert image.shape == (CANVAS.h, CANVAS.w, 3) and image.dtype == np.uint8


def test_a_box_in_the_emotions_colour_is_drawn_around_each_face_and_nowhere_else():
    frame = grey_frame()
    faces = [face(100, 80, 120, FACE), face(420, 250, 90, np.eye(7)[LABELS.index("sad")])]
    image = render(frame, full_result(faces), view_state())

    for f in faces:
        box, colour = f.box, emotion_bgr(f.top_emotion)
        middle_y = box.y + box.height / 2
        for edge_x in (box.x, box.x + box.width):
            assert tuple(image[canvas_point(frame.shape, edge_x, middle_y)[::-1]]) == colour
        # Inside the box the camera image is untouched.
        inside = canvas_point(frame.shape, box.x + box.width / 2, middle_y)
        assert tuple(image[inside[::-1]]) == (GREY, GREY, GREY)
    # Away from the faces (and from the corner chips), the frame is untouched.
    assert tuple(image[canvas_point(frame.shape, 320, 420)[::-1]]) == (GREY, GREY, GREY)


def test_boxes_follow_the_frame_when_it_is_scaled_to_fit():
    frame = grey_frame(1920, 1080)
    f = face(1200, 300, 400, FACE)
    image = render(frame, full_result([f]), view_state())
    left_edge = canvas_point(frame.shape, f.box.x, f.box.y + f.box.height / 2)
    assert tuple(image[left_edge[::-1]]) == emotion_bgr("happy")


def test_stale_results_draw_no_boxes():
    frame = grey_frame()
    f = face(100, 80, 120, FACE)
    image = render(frame, full_result([f]), view_state(result_age_s=10.0, connection="reconnecting"))
    left_edge = canvas_point(frame.shape, f.box.x, f.box.y + f.box.height / 2)
    assert tuple(image[left_edge[::-1]]) == (GREY, GREY, GREY)


def bar_fill(image: np.ndarray, chart: str, label: str) -> float:
    """Filled fraction of a bar, read from the pixels of its middle row."""
    bar = bar_rect(chart, label)
    row = image[bar.y + bar.h // 2, bar.x:bar.x + bar.w]
    filled = np.all(row == emotion_bgr(label), axis=1)
    track = np.all(row == TRACK, axis=1)
    assert np.all(filled | track), f"{chart}/{label}: bar pixels other than its colour and the track"
    return filled.mean()


@pytest.mark.parametrize(("chart", "values"), [("fused", FUSED), ("video", FACE), ("audio", VOICE)])
def test_bars_are_as_long_as_the_probabilities(chart, values):
    image = render(grey_frame(), full_result(), view_state())
    for label, probability in zip(LABELS, values):
        assert bar_fill(image, chart, label) == pytest.approx(probability, abs=1.5 / bar_rect(chart, label).w)


def test_a_modality_without_scores_has_empty_bars():
    image = render(grey_frame(), face_only_result(), view_state())
    assert all(bar_fill(image, "audio", label) == 0 for label in LABELS)
    assert bar_fill(image, "video", "happy") == pytest.approx(FACE.max(), abs=0.01)


def icon(emotion: str | None, radius: int = 80) -> np.ndarray:
    image = np.zeros((2 * radius + 20, 2 * radius + 20, 3), dtype=np.uint8)
    draw_emotion_icon(image, (radius + 10, radius + 10), radius, emotion)
    return image


def test_the_emotion_icon_is_a_face_in_the_emotions_colour_with_features_of_its_own():
    radius = 80
    features = {}
    for emotion in (*LABELS, None):
        image = icon(emotion, radius)
        cheek = (radius + 10 + round(0.7 * radius), radius + 10 + round(0.2 * radius))  # (x, y), right of the mouth
        assert tuple(image[cheek[1], cheek[0]]) == emotion_bgr(emotion)
        yy, xx = np.mgrid[: image.shape[0], : image.shape[1]]
        inner = (xx - radius - 10) ** 2 + (yy - radius - 10) ** 2 < (0.85 * radius) ** 2
        features[emotion] = (np.any(image != emotion_bgr(emotion), axis=2) & inner).tobytes()
    # Brows, eyes and mouth differ between every two emotions, not just the colour.
    assert len(set(features.values())) == len(features)


def test_the_view_shows_the_icon_of_the_fused_top_emotion():
    image = render(grey_frame(), full_result(), view_state())
    reference = np.full_like(image, PANEL_BACKGROUND)
    draw_emotion_icon(reference, ICON_CENTER, ICON_RADIUS, "happy")
    (cx, cy), r = ICON_CENTER, ICON_RADIUS + 2
    region = (slice(cy - r, cy + r), slice(cx - r, cx + r))
    assert np.array_equal(image[region], reference[region])


def test_an_uncertain_answer_shows_no_emotion_icon_but_names_the_guess():
    image = render(grey_frame(), uncertain_result(), view_state())
    reference = np.full_like(image, PANEL_BACKGROUND)
    draw_emotion_icon(reference, ICON_CENTER, ICON_RADIUS, None)
    (cx, cy), r = ICON_CENTER, ICON_RADIUS + 2
    region = (slice(cy - r, cy + r), slice(cx - r, cx + r))
    assert np.array_equal(image[region], reference[region])
    # The bars still show what the service answered.
    bar = bar_rect("fused", "happy")
    assert tuple(image[bar.y + bar.h // 2, bar.x + 2]) == emotion_bgr("happy")


@pytest.mark.parametrize("mode, frames, audio", [("both", True, True), ("video", True, False), ("audio", False, True)])
def test_dropped_input_names_only_what_the_mode_sends(mode, frames, audio):
    parts = view_state(mode=mode, frames_dropped_client=3, frames_dropped_service=12, audio_dropped_seconds=0.4).dropped_input()
    assert ("frames dropped here: 3, skipped by the service: 12" in parts) == frames
    assert ("audio dropped: 0.4 s" in parts) == audio
    assert len(parts) == frames + audio


def test_the_status_bar_notice_gives_way_to_its_figures():
    busy = dict(frames_dropped_client=123456, frames_dropped_service=654321, audio_dropped_seconds=999.9)
    long_notice = view_state(notice="lost the service (UNAVAILABLE: failed to connect to all addresses); " * 3, **busy)
    no_notice = view_state(notice="", **busy)

    def status_bar(state: ViewState) -> np.ndarray:
        return render(None, None, state)[STATUS_BAR.y:STATUS_BAR.y + STATUS_BAR.h, STATUS_BAR.x + 40:]

    notice_columns = np.flatnonzero((status_bar(long_notice) != status_bar(no_notice)).any(axis=(0, 2)))
    bare = status_bar(no_notice)
    figure_columns = np.flatnonzero((bare != bare[0, 0]).any(axis=(0, 2)))
    assert notice_columns.size and figure_columns.size
    assert notice_columns.max() < figure_columns.min()
