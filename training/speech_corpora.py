"""Emotional speech corpora, each read by its own file-name conventions, into one label space.

Recognised (by file name, wherever the files lie under the root):
  RAVDESS   03-01-05-01-02-01-12.wav   emotion = 3rd field, actor = 7th
  CREMA-D   1001_DFA_ANG_XX.wav        speaker_sentence_emotion_level
  TESS      OAF_back_angry.wav         speaker_word_emotion (ps = pleasant surprise)
  SAVEE     DC_a01.wav or DC/a01.wav   speaker_emotion+number (a d f h n sa su)
  EmoDB     03a01Fa.wav                speaker, text, emotion letter (W L E A F T N), version
  nEMO      samples/EB0_anger_1.opus   speaker_emotion_number; samples/../data.tsv, when present, is the
                                       authority on emotion, speaker and gender
  TurEV-DB  Angry/1157_kz_acik.opus    <class folder>/speaker_word (speaker: the number before the first _)
  URDU      Angry/SM1_F10_A010.opus    S + gender + speaker number, _F + file number, _ + emotion letter (A H N S)
and any other file whose folder is a class name (<class>/<file>, synonyms as training.labels knows them).
Classes without a place in our label space (calm is neutral; boredom, contempt are left out).
"""

from __future__ import annotations

import csv
import functools
import logging
import os
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from fusion_service.features.audio import SAMPLE_RATE, resample
from training.labels import UnknownLabelError, canonical_label

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpeechRecord:
    path: Path
    label: str | None  # None: a class outside our label space (boredom, contempt)
    speaker: str  # unique across corpora: "<corpus>:<speaker id>"
    corpus: str
    sex: str | None = None  # "female" / "male" where the corpus tells it


_RAVDESS = re.compile(r"^\d{2}-\d{2}-(?P<emotion>0[1-8])-\d{2}-\d{2}-\d{2}-(?P<actor>\d{2})$")
_RAVDESS_EMOTIONS = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad",
                     "05": "angry", "06": "fearful", "07": "disgust", "08": "surprised"}

_CREMA_D = re.compile(r"^(?P<speaker>\d{4})_[A-Z]{3}_(?P<emotion>ANG|DIS|FEA|HAP|NEU|SAD)_[A-Z]{1,2}$")

# One TESS file is named "OA_bite_neutral": the older speaker's prefix with its F missing.
_TESS = re.compile(r"^(?P<speaker>OAF|YAF|OA)_(?P<word>[A-Za-z]+)_(?P<emotion>[A-Za-z_]+)$")

_SAVEE_SPEAKERS = ("DC", "JE", "JK", "KL")
_SAVEE = re.compile(r"^(?:(?P<speaker>DC|JE|JK|KL)_)?(?P<emotion>sa|su|a|d|f|h|n)\d{2}$")
_SAVEE_EMOTIONS = {"a": "angry", "d": "disgust", "f": "fear", "h": "happy", "n": "neutral",
                   "sa": "sad", "su": "surprise"}

_EMODB = re.compile(r"^(?P<speaker>\d{2})[a-b]\d{2}(?P<emotion>[WLEAFTN])[a-z]$")
_EMODB_EMOTIONS = {"W": "angry", "L": "boredom", "E": "disgust", "A": "fear", "F": "happy",
                   "T": "sad", "N": "neutral"}


_NEMO = re.compile(r"^(?P<speaker>[A-Z]{2}\d)_(?P<emotion>anger|fear|happiness|neutral|sadness|surprised)_\d+$")
NEMO_METADATA = "data.tsv"

_TUREVDB_CLASSES = ("angry", "calm", "happy", "sad")
_TUREVDB = re.compile(r"^(?P<speaker>\d{4})_[^_].*$")

_URDU = re.compile(r"^S(?P<sex>[MF])(?P<number>\d+)_F\d+_(?P<emotion>[AHNS])\d+$")
_URDU_EMOTIONS = {"A": "angry", "H": "happy", "N": "neutral", "S": "sad"}
_SEXES = {"M": "male", "F": "female"}


def parse_ravdess(path: Path) -> SpeechRecord | None:
    match = _RAVDESS.match(path.stem)
    if not match:
        return None
    sex = "male" if int(match["actor"]) % 2 else "female"
    return _record(path, _RAVDESS_EMOTIONS[match["emotion"]], f"ravdess:{match['actor']}", "ravdess", sex)


def parse_crema_d(path: Path) -> SpeechRecord | None:
    match = _CREMA_D.match(path.stem)
    if not match:
        return None
    return _record(path, match["emotion"], f"crema-d:{match['speaker']}", "crema-d")


def parse_tess(path: Path) -> SpeechRecord | None:
    match = _TESS.match(path.stem)
    if not match:
        return None
    speaker = "OAF" if match["speaker"] == "OA" else match["speaker"]
    return _record(path, match["emotion"], f"tess:{speaker}", "tess", "female")


def parse_savee(path: Path) -> SpeechRecord | None:
    match = _SAVEE.match(path.stem)
    if not match:
        return None
    # SAVEE ships both as DC_a01.wav and as DC/a01.wav (speaker folders).
    speaker = match["speaker"] or (path.parent.name if path.parent.name in _SAVEE_SPEAKERS else None)
    if speaker is None:
        return None
    return _record(path, _SAVEE_EMOTIONS[match["emotion"]], f"savee:{speaker}", "savee")


def parse_emodb(path: Path) -> SpeechRecord | None:
    match = _EMODB.match(path.stem)
    if not match:
        return None
    return _record(path, _EMODB_EMOTIONS[match["emotion"]], f"emodb:{match['speaker']}", "emodb")


def parse_nemo(path: Path) -> SpeechRecord | None:
    """Emotion and speaker from the name; data.tsv one folder up (beside samples/) adds gender and wins."""
    match = _NEMO.match(path.stem)
    if not match:
        return None
    emotion, speaker, sex = match["emotion"], match["speaker"], None
    described = _nemo_metadata(path.parent.parent / NEMO_METADATA).get(path.stem)
    if described is not None:
        emotion, speaker, sex = described
    return _record(path, emotion, f"nemo:{speaker}", "nemo", sex)


@functools.cache
def _nemo_metadata(table: Path) -> dict[str, tuple[str, str, str | None]]:
    """file stem -> (emotion, speaker, sex) from nEMO's data.tsv; empty when the table is absent."""
    if not table.is_file():
        return {}
    with table.open(newline="", encoding="utf-8") as rows:
        return {
            Path(row["file_id"]).stem: (row["emotion"].strip(), row["speaker_id"].strip(),
                                        row["gender"].strip().lower() or None)
            for row in csv.DictReader(rows, delimiter="\t", quoting=csv.QUOTE_NONE)
        }


def parse_turevdb(path: Path) -> SpeechRecord | None:
    """<Class>/<speaker>_<word>: only TurEV-DB's four class folders, so other folder layouts are not taken."""
    match = _TUREVDB.match(path.stem)
    if not match or path.parent.name.lower() not in _TUREVDB_CLASSES:
        return None
    return _record(path, path.parent.name, f"turevdb:{match['speaker']}", "turevdb")


def parse_urdu(path: Path) -> SpeechRecord | None:
    match = _URDU.match(path.stem)
    if not match:
        return None
    speaker = f"urdu:S{match['sex']}{match['number']}"
    return _record(path, _URDU_EMOTIONS[match["emotion"]], speaker, "urdu", _SEXES[match["sex"]])


def parse_class_folder(path: Path) -> SpeechRecord | None:
    """Generic layout: the folder holding the file names its class; the speaker is unknown."""
    try:
        canonical_label(path.parent.name)
    except UnknownLabelError:
        return None
    return _record(path, path.parent.name, f"folder:{path.parent.name}", "folder")


# Most specific conventions first; the class-folder layout is the fallback.
PARSERS: tuple[Callable[[Path], SpeechRecord | None], ...] = (
    parse_ravdess, parse_crema_d, parse_tess, parse_savee, parse_emodb, parse_nemo, parse_urdu, parse_turevdb,
    parse_class_folder,
)


def _record(path: Path, corpus_label: str, speaker: str, corpus: str, sex: str | None = None) -> SpeechRecord:
    return SpeechRecord(path=path, label=canonical_label(corpus_label), speaker=speaker, corpus=corpus, sex=sex)


# soundfile reads by content and names Ogg Opus files "OGG"; their usual extension is .opus.
_EXTRA_EXTENSIONS = {".opus"}


def audio_files(root: Path) -> list[Path]:
    """Every file under root that soundfile can read, by extension; symlinked folders are followed."""
    readable = {f".{extension.lower()}" for extension in soundfile.available_formats()} | _EXTRA_EXTENSIONS
    found = []
    for folder, _, names in os.walk(root, followlinks=True):
        found += [Path(folder) / name for name in names
                  if Path(name).suffix.lower() in readable and not name.startswith(".")]
    return sorted(found)


def find_records(root: Path) -> list[SpeechRecord]:
    """All labelled speech files under root, whatever corpus layout each follows.

    Files of classes outside our label space are left out; files no convention recognises are counted and
    logged, so a wrongly named folder does not silently vanish.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"speech data folder {root} does not exist; pass the folder holding the corpora")
    records: list[SpeechRecord] = []
    left_out: Counter[str] = Counter()
    for path in audio_files(root):
        for parse in PARSERS:
            record = parse(path)
            if record is not None:
                break
        if record is None:
            left_out["unrecognised name or folder"] += 1
        elif record.label is None:
            left_out["class outside the label space"] += 1
        else:
            records.append(record)
    for reason, count in left_out.items():
        log.warning("%s: left out %d files (%s)", root, count, reason)
    return records


def read_samples(path: Path) -> tuple[np.ndarray, int]:
    """Mono float32 samples at the file's own rate, from any format soundfile reads."""
    samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    return samples.mean(axis=1), rate


def read_audio(path: Path) -> np.ndarray:
    """Mono float32 at the model's sample rate."""
    samples, rate = read_samples(path)
    return resample(samples, rate, SAMPLE_RATE)
