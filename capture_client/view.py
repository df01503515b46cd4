"""The live view as a picture: a pure function of (frame, result, state), drawn with OpenCV into a BGR image.

Layout (1280x720): the camera image on the left with a box and label per face; on the right the fused
emotion as a drawn face icon, then bar charts of the fused, face and voice probabilities; a status bar
at the bottom with the connection, rates and drop counts.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

from capture_client.modes import uses_audio, uses_video
from capture_client.palette import emotion_bgr
from capture_client.results import (
    face_status_text, method_name, probabilities, uncertainty_text, voice_status_text, weights_text,
)
from capture_client.state import ViewState
from protos.emotion.v1 import emotion_pb2 as pb
from protos.emotion.v1.constants import LABELS


class Rect(NamedTuple):
    x: int
    y: int
    w: int
    h: int


CANVAS = Rect(0, 0, 1280, 720)
VIDEO_AREA = Rect(0, 0, 880, 660)
PANEL = Rect(880, 0, 400, 660)
STATUS_BAR = Rect(0, 660, 1280, 60)

BACKGROUND = (22, 20, 20)
PANEL_BACKGROUND = (38, 33, 32)
TRACK = (66, 60, 58)
TEXT = (240, 240, 240)
MUTED = (160, 155, 150)
DARK_INK = (40, 36, 34)
GOOD, WARN, BAD = (110, 200, 90), (60, 170, 250), (80, 80, 230)
CONNECTION_COLOUR = {"connected": GOOD, "connecting": WARN, "reconnecting": WARN, "failed": BAD}

FONT = cv2.FONT_HERSHEY_SIMPLEX
TITLE_FONT = cv2.FONT_HERSHEY_DUPLEX

# Charts in the panel, top to bottom: (key, title).
CHARTS = (("fused", "Fused"), ("video", "Face"), ("audio", "Voice"))
ICON_CENTER = (PANEL.x + 78, PANEL.y + 80)
ICON_RADIUS = 58
_HEADER_HEIGHT = 160
_CHART_HEIGHT = 165
_CHART_TITLE_HEIGHT = 30
_BAR_PITCH = 18
_BAR_HEIGHT = 12
_BAR_X = 96
_BAR_WIDTH = 232


def bar_rect(chart: str, label: str) -> Rect:
    """Where the bar of `label` in chart `chart` ('fused', 'video' or 'audio') is drawn, full length."""
    chart_index = [key for key, _ in CHARTS].index(chart)
    top = PANEL.y + _HEADER_HEIGHT + chart_index * _CHART_HEIGHT + _CHART_TITLE_HEIGHT
    return Rect(PANEL.x + _BAR_X, top + LABELS.index(label) * _BAR_PITCH, _BAR_WIDTH, _BAR_HEIGHT)


def frame_placement(frame_shape: tuple[int, ...]) -> tuple[float, int, int]:
    """(scale, x offset, y offset) that fit a frame into the video area, keeping its aspect ratio."""
    height, width = frame_shape[:2]
    scale = min(VIDEO_AREA.w / width, VIDEO_AREA.h / height)
    return scale, VIDEO_AREA.x + (VIDEO_AREA.w - round(width * scale)) // 2, VIDEO_AREA.y + (VIDEO_AREA.h - round(height * scale)) // 2


def render(frame: np.ndarray | None, result: pb.FuseResponse | None, state: ViewState) -> np.ndarray:
    """The whole view for one moment, as a BGR uint8 image of CANVAS's size."""
    canvas = np.full((CANVAS.h, CANVAS.w, 3), BACKGROUND, dtype=np.uint8)
    shown = None if state.stale else result
    _draw_video(canvas, frame, shown, state)
    _draw_panel(canvas, result, stale=state.stale)
    _draw_status_bar(canvas, state)
    return canvas


# ---------------------------------------------------------------- video area

def _draw_video(canvas: np.ndarray, frame: np.ndarray | None, result: pb.FuseResponse | None, state: ViewState) -> None:
    if frame is None:
        message = "waiting for the camera..." if uses_video(state.mode) else "voice only: no camera in this mode"
        _text_centered(canvas, message, VIDEO_AREA, 0.9, MUTED)
    else:
        scale, ox, oy = frame_placement(frame.shape)
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        size = (round(frame.shape[1] * scale), round(frame.shape[0] * scale))
        canvas[oy:oy + size[1], ox:ox + size[0]] = cv2.resize(frame, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        if result is not None:
            for index, face in enumerate(result.faces):
                _draw_face_box(canvas, face, scale, ox, oy, primary=index == result.primary_face)
    _draw_presence(canvas, result, state)


def _draw_face_box(canvas: np.ndarray, face: pb.Face, scale: float, ox: int, oy: int, primary: bool) -> None:
    colour = emotion_bgr(face.top_emotion)
    x0, y0 = ox + round(face.box.x * scale), oy + round(face.box.y * scale)
    x1, y1 = x0 + round(face.box.width * scale), y0 + round(face.box.height * scale)
    cv2.rectangle(canvas, (x0, y0), (x1, y1), colour, 3 if primary else 2, cv2.LINE_AA)
    scores = probabilities(face.scores)
    caption = face.top_emotion + (f" {scores.max():.0%}" if scores is not None else "")
    (tw, th), baseline = cv2.getTextSize(caption, FONT, 0.7, 2)
    chip_top = y0 - th - 14 if y0 - th - 14 >= VIDEO_AREA.y else y1
    cv2.rectangle(canvas, (x0 - 1, chip_top), (x0 + tw + 14, chip_top + th + 14), colour, cv2.FILLED)
    cv2.putText(canvas, caption, (x0 + 7, chip_top + th + 7), FONT, 0.7, DARK_INK, 2, cv2.LINE_AA)


def _draw_presence(canvas: np.ndarray, result: pb.FuseResponse | None, state: ViewState) -> None:
    """Two chips in the top-left corner: is there speech, is there a face."""
    x = VIDEO_AREA.x + 14
    chips = []
    if uses_audio(state.mode):
        chips.append(("voice: " + voice_status_text(result), result is not None and result.audio.status == pb.USED))
    if uses_video(state.mode):
        chips.append(("face: " + face_status_text(result), result is not None and result.video.status == pb.USED))
    for text, present in chips:
        (tw, th), _ = cv2.getTextSize(text, FONT, 0.55, 1)
        top = VIDEO_AREA.y + 14
        _translucent_box(canvas, Rect(x, top, tw + 36, th + 16), (0, 0, 0), 0.55)
        cv2.circle(canvas, (x + 13, top + (th + 16) // 2), 6, GOOD if present else MUTED, cv2.FILLED, cv2.LINE_AA)
        cv2.putText(canvas, text, (x + 26, top + th + 8), FONT, 0.55, TEXT, 1, cv2.LINE_AA)
        x += tw + 46


# ---------------------------------------------------------------- panel

def _draw_panel(canvas: np.ndarray, result: pb.FuseResponse | None, stale: bool) -> None:
    cv2.rectangle(canvas, (PANEL.x, PANEL.y), (PANEL.x + PANEL.w, PANEL.y + PANEL.h), PANEL_BACKGROUND, cv2.FILLED)
    top_emotion = result.top_emotion if result is not None and result.top_emotion else None
    uncertain = result is not None and result.uncertain
    # An uncertain answer is a guess: the icon shows no emotion, and the guess is named as one.
    draw_emotion_icon(canvas, ICON_CENTER, ICON_RADIUS, None if uncertain else top_emotion)
    x = PANEL.x + 158
    if uncertain:
        cv2.putText(canvas, "UNCERTAIN", (x, PANEL.y + 74), TITLE_FONT, 0.95, WARN, 2, cv2.LINE_AA)
        cv2.putText(canvas, f"guess: {top_emotion} {result.top_probability:.0%}", (x, PANEL.y + 98), FONT, 0.5, TEXT, 1, cv2.LINE_AA)
        cv2.putText(canvas, uncertainty_text(result), (x, PANEL.y + 117), FONT, 0.5, WARN, 1, cv2.LINE_AA)
    elif top_emotion:
        cv2.putText(canvas, top_emotion.upper(), (x, PANEL.y + 74), TITLE_FONT, 1.15, emotion_bgr(top_emotion), 2, cv2.LINE_AA)
        cv2.putText(canvas, f"{result.top_probability:.0%}", (x, PANEL.y + 112), TITLE_FONT, 0.9, TEXT, 1, cv2.LINE_AA)
    else:
        cv2.putText(canvas, "no emotion", (x, PANEL.y + 74), TITLE_FONT, 0.95, MUTED, 2, cv2.LINE_AA)
        hint = "waiting for results" if result is None else "no face and no speech"
        cv2.putText(canvas, hint, (x, PANEL.y + 106), FONT, 0.5, MUTED, 1, cv2.LINE_AA)
    if stale and result is not None:
        cv2.putText(canvas, "last result (not live)", (x, PANEL.y + 140), FONT, 0.5, WARN, 1, cv2.LINE_AA)
    elif top_emotion:
        _draw_fusion(canvas, result, x)

    for key, title in CHARTS:
        if result is None:
            scores, status = None, "waiting"
        elif key == "fused":
            scores = probabilities(result.fused)
            status = "" if scores is not None else "no input"
        elif key == "video":
            scores, status = probabilities(result.video.scores), face_status_text(result)
        else:
            scores, status = probabilities(result.audio.scores), voice_status_text(result)
        _draw_chart(canvas, key, title, status, scores, dim=stale)


def _draw_fusion(canvas: np.ndarray, result: pb.FuseResponse, x: int) -> None:
    """The weights used and, below them, the fusion method (when the service says which)."""
    cv2.putText(canvas, weights_text(result), (x, PANEL.y + 136), FONT, 0.5, MUTED, 1, cv2.LINE_AA)
    cv2.putText(canvas, method_name(result), (x, PANEL.y + 154), FONT, 0.42, MUTED, 1, cv2.LINE_AA)


def _draw_chart(canvas: np.ndarray, key: str, title: str, status: str, scores: np.ndarray | None, dim: bool) -> None:
    first = bar_rect(key, LABELS[0])
    title_y = first.y - 12
    cv2.putText(canvas, title, (PANEL.x + 16, title_y), TITLE_FONT, 0.65, TEXT, 1, cv2.LINE_AA)
    (sw, _), _ = cv2.getTextSize(status, FONT, 0.45, 1)
    cv2.putText(canvas, status, (PANEL.x + PANEL.w - 16 - sw, title_y), FONT, 0.45, MUTED, 1, cv2.LINE_AA)
    top = int(np.argmax(scores)) if scores is not None else -1
    for index, label in enumerate(LABELS):
        bar = bar_rect(key, label)
        strong = index == top
        cv2.putText(canvas, label, (PANEL.x + 16, bar.y + bar.h - 1), FONT, 0.45, TEXT if strong else MUTED, 1, cv2.LINE_AA)
        cv2.rectangle(canvas, (bar.x, bar.y), (bar.x + bar.w - 1, bar.y + bar.h - 1), TRACK, cv2.FILLED)
        if scores is None:
            continue
        filled = round(float(scores[index]) * bar.w)
        colour = emotion_bgr(label)
        if dim:
            colour = tuple(int(0.45 * c + 0.55 * t) for c, t in zip(colour, TRACK))
        if filled > 0:
            cv2.rectangle(canvas, (bar.x, bar.y), (bar.x + filled - 1, bar.y + bar.h - 1), colour, cv2.FILLED)
        cv2.putText(canvas, f"{scores[index]:.0%}", (bar.x + bar.w + 8, bar.y + bar.h - 1), FONT, 0.45,
                    TEXT if strong else MUTED, 1, cv2.LINE_AA)


# ---------------------------------------------------------------- emotion icon

def draw_emotion_icon(canvas: np.ndarray, center: tuple[int, int], radius: int, emotion: str | None) -> None:
    """A round face whose brows, eyes and mouth show `emotion` (a plain grey face for None)."""
    cx, cy = center
    r = radius

    def p(dx: float, dy: float) -> tuple[int, int]:
        return (round(cx + dx * r), round(cy + dy * r))

    def s(v: float) -> int:
        return max(1, round(v * r))

    ink = DARK_INK
    cv2.circle(canvas, center, r, emotion_bgr(emotion), cv2.FILLED, cv2.LINE_AA)
    cv2.circle(canvas, center, r, ink, s(0.05), cv2.LINE_AA)

    # Eyes: wide open for surprise and fear, squinting in anger.
    for side in (-1, 1):
        eye = p(0.36 * side, -0.12)
        if emotion in ("surprise", "fear"):
            cv2.circle(canvas, eye, s(0.17), (250, 250, 250), cv2.FILLED, cv2.LINE_AA)
            cv2.circle(canvas, eye, s(0.17), ink, s(0.035), cv2.LINE_AA)
            cv2.circle(canvas, eye, s(0.08), ink, cv2.FILLED, cv2.LINE_AA)
        elif emotion == "happy":
            cv2.ellipse(canvas, p(0.36 * side, -0.08), (s(0.13), s(0.11)), 0, 180, 360, ink, s(0.07), cv2.LINE_AA)
        elif emotion == "angry":
            cv2.ellipse(canvas, eye, (s(0.1), s(0.06)), 0, 0, 360, ink, cv2.FILLED, cv2.LINE_AA)
        else:
            cv2.circle(canvas, eye, s(0.09), ink, cv2.FILLED, cv2.LINE_AA)

    # Brows: ((dy, dx) of the inner end, (dy, dx) of the outer end), mirrored for the other side.
    brows = {
        "angry": ((-0.30, 0.13), (-0.48, 0.55)),
        "sad": ((-0.46, 0.14), (-0.34, 0.54)),
        "fear": ((-0.52, 0.14), (-0.42, 0.54)),
        "surprise": ((-0.52, 0.2), (-0.52, 0.52)),
        "disgust": ((-0.36, 0.14), (-0.40, 0.54)),
        "neutral": ((-0.38, 0.2), (-0.38, 0.5)),
    }
    if emotion in brows:
        (inner_dy, inner_dx), (outer_dy, outer_dx) = brows[emotion]
        for side in (-1, 1):
            dy_shift = 0.08 if emotion == "disgust" and side > 0 else 0.0  # one brow lowered
            cv2.line(canvas, p(inner_dx * side, inner_dy + dy_shift), p(outer_dx * side, outer_dy + dy_shift), ink, s(0.08), cv2.LINE_AA)

    # Mouth.
    if emotion == "happy":
        cv2.ellipse(canvas, p(0, 0.2), (s(0.48), s(0.42)), 0, 0, 180, ink, cv2.FILLED, cv2.LINE_AA)
        cv2.ellipse(canvas, p(0, 0.48), (s(0.22), s(0.12)), 0, 0, 180, (90, 90, 220), cv2.FILLED, cv2.LINE_AA)
    elif emotion == "sad":
        cv2.ellipse(canvas, p(0, 0.62), (s(0.34), s(0.22)), 0, 200, 340, ink, s(0.08), cv2.LINE_AA)
        cv2.ellipse(canvas, p(0.36, 0.18), (s(0.06), s(0.1)), 0, 0, 360, (250, 200, 120), cv2.FILLED, cv2.LINE_AA)  # a tear
    elif emotion == "angry":
        cv2.ellipse(canvas, p(0, 0.62), (s(0.32), s(0.16)), 0, 195, 345, ink, s(0.09), cv2.LINE_AA)
    elif emotion == "surprise":
        cv2.ellipse(canvas, p(0, 0.45), (s(0.16), s(0.22)), 0, 0, 360, ink, cv2.FILLED, cv2.LINE_AA)
    elif emotion == "fear":
        cv2.ellipse(canvas, p(0, 0.45), (s(0.34), s(0.16)), 0, 0, 360, ink, cv2.FILLED, cv2.LINE_AA)
        cv2.line(canvas, p(-0.3, 0.45), p(0.3, 0.45), (250, 250, 250), s(0.05), cv2.LINE_AA)  # clenched teeth
    elif emotion == "disgust":
        xs = np.linspace(-0.36, 0.36, 24)
        wave = np.stack([cx + xs * r, cy + (0.44 + 0.06 * np.sin(xs * 14) + 0.1 * xs) * r], axis=1)
        cv2.polylines(canvas, [np.round(wave).astype(np.int32)], False, ink, s(0.07), cv2.LINE_AA)
    else:  # neutral, or no emotion
        cv2.line(canvas, p(-0.3, 0.42), p(0.3, 0.42), ink, s(0.08), cv2.LINE_AA)


# ---------------------------------------------------------------- status bar

def _draw_status_bar(canvas: np.ndarray, state: ViewState) -> None:
    bar = STATUS_BAR
    cv2.rectangle(canvas, (bar.x, bar.y), (bar.x + bar.w, bar.y + bar.h), (30, 27, 26), cv2.FILLED)
    mid = bar.y + bar.h // 2
    cv2.circle(canvas, (bar.x + 22, mid), 8, CONNECTION_COLOUR.get(state.connection, MUTED), cv2.FILLED, cv2.LINE_AA)
    parts = [f"camera {state.camera_fps:.0f} fps"] if uses_video(state.mode) else []
    parts += [f"{state.results_per_second:.1f} results/s", *state.dropped_input()]
    stats = "   ".join(parts)
    (tw, _), _ = cv2.getTextSize(stats, FONT, 0.5, 1)
    stats_x = bar.x + bar.w - 18 - tw
    cv2.putText(canvas, stats, (stats_x, mid + 6), FONT, 0.5, MUTED, 1, cv2.LINE_AA)
    notice = _fit(state.notice, FONT, 0.55, stats_x - 24 - (bar.x + 40))  # the notice gives way to the figures
    cv2.putText(canvas, notice, (bar.x + 40, mid + 6), FONT, 0.55, TEXT, 1, cv2.LINE_AA)


# ---------------------------------------------------------------- helpers

def _fit(text: str, font: int, scale: float, width: int) -> str:
    """Shorten text with '...' until it fits `width` pixels."""
    while text and cv2.getTextSize(text, font, scale, 1)[0][0] > width:
        text = text[:-4] + "..." if len(text) > 3 else ""
    return text


def _text_centered(canvas: np.ndarray, text: str, area: Rect, scale: float, colour: tuple[int, int, int]) -> None:
    (tw, th), _ = cv2.getTextSize(text, FONT, scale, 1)
    cv2.putText(canvas, text, (area.x + (area.w - tw) // 2, area.y + (area.h + th) // 2), FONT, scale, colour, 1, cv2.LINE_AA)


def _translucent_box(canvas: np.ndarray, rect: Rect, colour: tuple[int, int, int], opacity: float) -> None:
    region = canvas[rect.y:rect.y + rect.h, rect.x:rect.x + rect.w]
    region[:] = (region * (1 - opacity) + np.array(colour) * opacity).astype(np.uint8)
