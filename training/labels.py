"""Corpora's class names mapped onto the API's seven labels (protos.emotion.v1.constants.LABELS)."""

from __future__ import annotations

# The original system's four classes; reports show this view too.
FOUR_CLASS_LABELS: tuple[str, ...] = ("angry", "fear", "happy", "sad")

# Names used by corpora and folder layouts for our classes. Names that map to
# None (contempt, boredom) have no class and are left out.
_SYNONYMS: dict[str, str | None] = {
    "anger": "angry",
    "angry": "angry",
    "ang": "angry",
    "mad": "angry",
    "disgust": "disgust",
    "disgusted": "disgust",
    "dis": "disgust",
    "fear": "fear",
    "fearful": "fear",
    "afraid": "fear",
    "scared": "fear",
    "fea": "fear",
    "happy": "happy",
    "happiness": "happy",
    "joy": "happy",
    "hap": "happy",
    "neutral": "neutral",
    "calm": "neutral",
    "neu": "neutral",
    "sad": "sad",
    "sadness": "sad",
    "surprise": "surprise",
    "surprised": "surprise",
    "ps": "surprise",
    "pleasant_surprise": "surprise",
    "pleasant_surprised": "surprise",
    "sur": "surprise",
    "contempt": None,
    "boredom": None,
    "bored": None,
}


class UnknownLabelError(ValueError):
    pass


def canonical_label(name: str) -> str | None:
    """Map a corpus's class name to ours; None for classes we leave out (contempt, boredom).

    Raises UnknownLabelError for names we do not know, so a typo in a folder name is
    reported instead of silently dropping data.
    """
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    if key in _SYNONYMS:
        return _SYNONYMS[key]
    raise UnknownLabelError(
        f"unknown emotion class name {name!r}; known names: {', '.join(sorted(_SYNONYMS))}"
    )
