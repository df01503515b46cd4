"""Predictions of an exported video model on a face corpus, through the live service's face pipeline.

Used by `python -m training.evaluate video DATA_DIR`: full images go through face detection (the largest
face answers; no face = no prediction, an error in the report), face-crop corpora through
FacePipeline.face_image, exactly as the service and training frame them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from fusion_service.features.faces.pipeline import FacePipeline
from protos.emotion.v1.constants import LABELS
from training.face_corpora import FaceItem, NoFaceError, face_crop_of, load_face_corpus

BATCH_SIZE = 256


def evaluation_items(items: list[FaceItem]) -> list[FaceItem]:
    """A corpus that has test splits (FER2013's CSV or test folders) is evaluated on them, not on its training part."""
    held_out = [item for item in items if item.split not in (None, "train")]
    return held_out or items


def video_predictions(data_dir: Path, model_dir: Path) -> tuple[list[str], list[np.ndarray | None]]:
    """True labels and probabilities (None where no face was found) for every labelled image under data_dir."""
    items = evaluation_items(load_face_corpus(Path(data_dir)))
    return [item.label for item in items], crop_predictions(items, model_dir)


def live_crops(items: list[FaceItem], pipeline: FacePipeline) -> list[np.ndarray | None]:
    """Each item's face crop as the live path makes it (None where no face was found)."""
    crops: list[np.ndarray | None] = []
    for item in items:
        try:
            crops.append(face_crop_of(item, pipeline))
        except NoFaceError:
            crops.append(None)
    return crops


def crop_predictions(items: list[FaceItem], model_dir: Path) -> list[np.ndarray | None]:
    """The served model's probabilities per item (None where no face was found)."""
    serve = tf.saved_model.load(str(model_dir)).signatures["serving_default"]
    crops = live_crops(items, FacePipeline())
    found = [i for i, crop in enumerate(crops) if crop is not None]
    probabilities: list[np.ndarray | None] = [None] * len(items)
    for start in range(0, len(found), BATCH_SIZE):
        batch = found[start:start + BATCH_SIZE]
        outputs = serve(image=tf.constant(np.stack([crops[i] for i in batch])))
        served_labels = [value.decode() for value in outputs["labels"].numpy()[0]]
        if served_labels != list(LABELS):
            raise RuntimeError(f"model {model_dir} answers with labels {served_labels}, expected {list(LABELS)}")
        for i, row in zip(batch, outputs["probabilities"].numpy()):
            probabilities[i] = row
    return probabilities
