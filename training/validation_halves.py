"""The models' validation sets, each cut into a fitting half and a reporting half, by speaker or subject.

Anything fitted after training (calibration, the learned fusion) is fitted on the fitting half and measured on
the reporting half, so no figure is measured on the data that fitted it. The fitting half is cut once more into
two folds, on which a choice between methods (e.g. temperature or vector scaling) is cross-validated.

Part numbers: 0 and 1 are the folds of the fitting half, 2 the reporting half.
Audio: training.train_audio's validation speakers of every corpus, in the order listed there: the first half
fits (folds alternating), the second half reports; RAVDESS: fold 0 actor 17, fold 1 actor 18, reporting 19 and
20 (a man and a woman each side). A corpus with one validation speaker only reports. Video:
training.train_video's FER2013 stratified hold-out (cut in stratified, seeded halves: FER2013 has no subject ids),
CK+48 held-out subjects and, where the data has them, the Taiwanese validation performers (both cut by subject).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from protos.emotion.v1.constants import LABELS
from training.face_corpora import FaceItem, load_ck48, load_fer2013, load_taiwanese
from training.face_dataset import named_holdout, stratified_holdout, subject_holdout
from training.speech_corpora import SpeechRecord, find_records

FIT_FOLDS = (0, 1)
REPORT_PART = 2
SPLIT_SEED = 15


@dataclass(frozen=True)
class FaceValidation:
    corpus: str  # "fer2013", "ck48" or "taiwanese"
    items: list[FaceItem]
    parts: np.ndarray  # per item: 0, 1 (fitting folds) or 2 (reporting)


def audio_parts(validation_speakers: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Part of each validation speaker: per corpus, the first half in alternating folds, the rest reporting."""
    parts = {}
    for speakers in validation_speakers.values():
        fitting = len(speakers) // 2
        for index, speaker in enumerate(speakers):
            parts[speaker] = index % 2 if index < fitting else REPORT_PART
    return parts


def audio_validation(speech_dir: Path) -> tuple[list[SpeechRecord], np.ndarray]:
    """The validation speakers' labelled clips and the part of each."""
    from training.train_audio import VALIDATION_SPEAKERS

    parts = audio_parts(VALIDATION_SPEAKERS)
    records = [r for r in find_records(Path(speech_dir)) if r.speaker in parts and r.label is not None]
    missing = set(parts) - {r.speaker for r in records}
    if missing:
        raise SystemExit(f"validation speakers {sorted(missing)} not found under {speech_dir}; is the path right?")
    return records, np.array([parts[r.speaker] for r in records])


def face_validation(faces_dir: Path) -> list[FaceValidation]:
    """FER2013's hold-out, CK+48's held-out subjects and the Taiwanese validation performers, exactly as
    training.train_video holds them out (the Taiwanese set where faces_dir has it, as there)."""
    from training.train_video import (CK_HOLDOUT_SUBJECT_FRACTION, FER_HOLDOUT_FRACTION, SEED,
                                      TAIWANESE_VALIDATION_PERFORMERS)

    faces_dir = Path(faces_dir)
    fer_all = [item for item in load_fer2013(faces_dir / "fer2013") if item.split in (None, "train")]
    _, fer_held = stratified_holdout(np.array([LABELS.index(i.label) for i in fer_all]), FER_HOLDOUT_FRACTION, SEED)
    fer = [fer_all[i] for i in fer_held]
    ck_all = load_ck48(faces_dir / "ck48")
    _, ck_held = subject_holdout([item.subject for item in ck_all], CK_HOLDOUT_SUBJECT_FRACTION, SEED)
    ck = [ck_all[i] for i in ck_held]
    sets = [
        FaceValidation("fer2013", fer, stratified_parts([LABELS.index(i.label) for i in fer])),
        FaceValidation("ck48", ck, subject_parts([i.subject for i in ck])),
    ]
    if (faces_dir / "taiwanese").is_dir():
        tw_all = load_taiwanese(faces_dir / "taiwanese")
        _, tw_held = named_holdout([item.subject for item in tw_all], TAIWANESE_VALIDATION_PERFORMERS)
        tw = [tw_all[i] for i in tw_held]
        sets.append(FaceValidation("taiwanese", tw, subject_parts([i.subject for i in tw])))
    return sets


def stratified_parts(labels: Sequence[int]) -> np.ndarray:
    """Half of every class to reporting, the rest in two stratified folds."""
    labels = np.asarray(labels)
    fitting, _ = stratified_holdout(labels, 0.5, SPLIT_SEED)
    fold_0, fold_1 = stratified_holdout(labels[fitting], 0.5, SPLIT_SEED + 1)
    parts = np.full(len(labels), REPORT_PART)
    parts[fitting[fold_0]], parts[fitting[fold_1]] = 0, 1
    return parts


def subject_parts(subjects: Sequence[str]) -> np.ndarray:
    """Half of the subjects to reporting, the others in two folds of whole subjects."""
    subjects = np.asarray(subjects)
    fitting, _ = subject_holdout(list(subjects), 0.5, SPLIT_SEED)
    fold_0, fold_1 = subject_holdout(list(subjects[fitting]), 0.5, SPLIT_SEED + 1)
    parts = np.full(len(subjects), REPORT_PART)
    parts[fitting[fold_0]], parts[fitting[fold_1]] = 0, 1
    return parts
