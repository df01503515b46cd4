"""One colour per emotion, shared by the live view and the timeline chart so both read the same way."""

from __future__ import annotations

EMOTION_RGB: dict[str, tuple[int, int, int]] = {
    "angry": (229, 57, 53),
    "disgust": (124, 179, 66),
    "fear": (142, 84, 190),
    "happy": (253, 216, 53),
    "neutral": (176, 176, 176),
    "sad": (41, 121, 255),
    "surprise": (255, 143, 0),
}
UNKNOWN_RGB = (120, 120, 128)


def emotion_bgr(label: str | None) -> tuple[int, int, int]:
    """OpenCV's channel order; grey for no emotion."""
    r, g, b = EMOTION_RGB.get(label or "", UNKNOWN_RGB)
    return (b, g, r)
