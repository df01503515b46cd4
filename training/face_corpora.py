"""Face corpora as lists of labelled items, each read by its own corpus's conventions.

Loaders only find images and their labels; turning an image into the model's input is the job of
fusion_service.features.faces (see `face_crop_of`), the same code the live service runs.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from fusion_service.features.faces.crop import FACE_SIZE
from fusion_service.features.faces.pipeline import FacePipeline
from protos.emotion.v1.constants import LABELS
from training.labels import canonical_label

# Extensions OpenCV's imread decodes in the opencv-python wheels.
IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".jpe", ".bmp", ".dib", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm", ".pnm",
     ".jp2", ".sr", ".ras", ".pxm", ".exr", ".hdr", ".pic"}
)

# In a generic folder, an image no larger than this on both sides is taken to be a face crop already:
# a detector cannot find a face that fills so small an image (no context around it), and crop corpora come at this size.
MAX_CROP_SIDE = 2 * FACE_SIZE

# FER2013's CSV: emotion index in its own (= our) order, 48x48 pixels as space-separated integers.
FER_CSV_NAME = "fer2013.csv"
_FER_CSV_USAGE_SPLITS = {"Training": "train", "PublicTest": "public_test", "PrivateTest": "private_test"}
_FER_FILE = re.compile(r"^(Training|PublicTest|PrivateTest)_\d+\.\w+$")
_CK_FILE = re.compile(r"^(S\d+)_(\d+)_(\d+)\.\w+$")
# Taiwanese set: PP performer, T performance type, V view, E expression letter, nn serial number.
_TAIWANESE_FILE = re.compile(r"^(\d{2})(\d)(\d)([a-g])(\d{2})\.\w+$")
# The few files with no expression letter (e.g. 1201002.jpg) are left out: only observers' ratings label them.
_TAIWANESE_UNLABELLED = re.compile(r"^\d{7}\.\w+$")
_TAIWANESE_EXPRESSIONS = {
    "a": "neutral", "b": "happy", "c": "sad", "d": "angry", "e": "disgust", "f": "fear", "g": "surprise"
}


class CorpusError(ValueError):
    pass


class NoFaceError(RuntimeError):
    pass


@dataclass(frozen=True)
class FaceItem:
    """One labelled image: a file, or pixels held in memory (FER2013's CSV)."""

    source: str
    label: str
    corpus: str
    is_face_crop: bool
    subject: str | None = None
    split: str | None = None
    pixels: np.ndarray | None = field(default=None, compare=False, repr=False)


def read_image(item: FaceItem) -> np.ndarray:
    """The item's image as uint8 gray or BGR, whatever format and depth the file has."""
    if item.pixels is not None:
        return item.pixels
    image = cv2.imread(item.source, cv2.IMREAD_COLOR)
    if image is None:
        raise CorpusError(f"OpenCV cannot read {item.source}: is it an image file, and is it intact?")
    return image


def face_crop_of(item: FaceItem, pipeline: FacePipeline) -> np.ndarray:
    """The model input [48, 48, 1] for an item: face crops are framed as they are, full images are detected.

    Raises NoFaceError for a full image in which the detector finds no face; the largest face is used.
    """
    image = read_image(item)
    if item.is_face_crop:
        return pipeline.face_image(image)
    _, crops = pipeline.faces(image)
    if len(crops) == 0:
        raise NoFaceError(f"no face found in {item.source}")
    return crops[0]


def load_fer2013(root: Path) -> list[FaceItem]:
    """FER2013 as `<split>/<class>/<file>` folders, or as the original fer2013.csv anywhere under root."""
    root = Path(root)
    csv_files = sorted(root.rglob(FER_CSV_NAME)) if root.is_dir() else [root]
    if csv_files and csv_files[0].suffix == ".csv":
        return load_fer2013_csv(csv_files[0])
    items = [
        FaceItem(str(path), label, "fer2013", is_face_crop=True, split=_fer_split(path, root))
        for path, label in _labelled_images(root)
    ]
    if not items:
        raise CorpusError(f"no FER2013 images under {root}: expected <split>/<class>/<file> folders or {FER_CSV_NAME}")
    return items


def load_fer2013_csv(path: Path) -> list[FaceItem]:
    """The original FER2013 CSV (columns emotion, pixels, Usage); rows become in-memory 48x48 images."""
    items = []
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"emotion", "pixels"} - set(reader.fieldnames or [])
        if missing:
            raise CorpusError(f"{path} lacks the FER2013 column(s) {sorted(missing)}; found {reader.fieldnames}")
        for row_number, row in enumerate(reader, start=2):
            emotion = int(row["emotion"])
            if not 0 <= emotion < len(LABELS):
                raise CorpusError(f"{path}, line {row_number}: emotion {emotion} is not in 0..{len(LABELS) - 1}")
            pixels = np.array(row["pixels"].split(), dtype=np.uint8)
            if pixels.size != FACE_SIZE * FACE_SIZE:
                raise CorpusError(f"{path}, line {row_number}: {pixels.size} pixels, expected {FACE_SIZE * FACE_SIZE}")
            usage = row.get("Usage") or "Training"
            items.append(
                FaceItem(
                    f"{path}:{row_number}",
                    LABELS[emotion],
                    "fer2013",
                    is_face_crop=True,
                    split=_FER_CSV_USAGE_SPLITS.get(usage, usage),
                    pixels=pixels.reshape(FACE_SIZE, FACE_SIZE),
                )
            )
    return items


def load_ck48(root: Path) -> list[FaceItem]:
    """CK+48 `<class>/S<subject>_<sequence>_<frame>.png`; contempt has no class and is left out."""
    items = []
    for path, label in _labelled_images(Path(root)):
        match = _CK_FILE.match(path.name)
        if match is None:
            raise CorpusError(f"{path} is not named S<subject>_<sequence>_<frame> as CK+48 files are")
        items.append(FaceItem(str(path), label, "ck48", is_face_crop=True, subject=match.group(1)))
    if not items:
        raise CorpusError(f"no CK+48 images under {root}: expected <class>/S<subject>_<sequence>_<frame>.png")
    return items


def load_taiwanese(root: Path) -> list[FaceItem]:
    """The Taiwanese posed-expression set, `PPTVEnn.jpg` (performer, type, view, expression letter, serial).

    Its 256x256 images show the head with some context, so they are full images: the detector finds and frames
    the face as in live frames. Files without an expression letter are left out.
    """
    items = []
    for path in _image_files(Path(root)):
        match = _TAIWANESE_FILE.match(path.name)
        if match is None:
            if _TAIWANESE_UNLABELLED.match(path.name):
                continue
            raise CorpusError(f"{path} is not named PPTVEnn (performer, type, view, expression a-g, serial)")
        performer, _, _, expression, _ = match.groups()
        items.append(FaceItem(str(path), _TAIWANESE_EXPRESSIONS[expression], "taiwanese", is_face_crop=False,
                              subject=performer))
    if not items:
        raise CorpusError(f"no Taiwanese images under {root}: expected files named PPTVEnn.jpg")
    return items


def load_image_folder(root: Path, corpus: str | None = None) -> list[FaceItem]:
    """Any `<class>/<file>` tree (class names by their synonyms); small images count as face crops."""
    root = Path(root)
    items = []
    for path, label in _labelled_images(root):
        height, width = _image_size(path)
        items.append(
            FaceItem(str(path), label, corpus or root.name, is_face_crop=max(height, width) <= MAX_CROP_SIDE)
        )
    if not items:
        raise CorpusError(f"no labelled images under {root}: expected <class>/<image file> folders")
    return items


def load_face_corpus(root: Path) -> list[FaceItem]:
    """Whatever face corpus root holds, recognised by its conventions (FER2013 CSV or names, CK+48 names, generic)."""
    root = Path(root)
    if not root.exists():
        raise CorpusError(f"{root} does not exist: pass the folder of a face corpus")
    if root.is_file() or any(root.rglob(FER_CSV_NAME)):
        return load_fer2013(root)
    names = [path.name for path in _image_files(root)]
    if not names:
        raise CorpusError(f"no images under {root}")
    if all(_CK_FILE.match(name) for name in names):
        return load_ck48(root)
    if all(_FER_FILE.match(name) for name in names):
        return load_fer2013(root)
    if all(_TAIWANESE_FILE.match(name) or _TAIWANESE_UNLABELLED.match(name) for name in names):
        return load_taiwanese(root)
    return load_image_folder(root)


def _image_files(root: Path) -> Iterable[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _labelled_images(root: Path) -> list[tuple[Path, str]]:
    """(image, class) for every image whose parent folder names one of our classes; left-out classes skipped."""
    labelled = []
    for path in _image_files(root):
        label = canonical_label(path.parent.name)
        if label is not None:
            labelled.append((path, label))
    return labelled


def _fer_split(path: Path, root: Path) -> str | None:
    """The split a FER2013 image belongs to, from its file name prefix or its split folder."""
    match = _FER_FILE.match(path.name)
    if match is not None:
        return _FER_CSV_USAGE_SPLITS[match.group(1)]
    relative = path.relative_to(root).parts
    return relative[-3] if len(relative) >= 3 else None


def _image_size(path: Path) -> tuple[int, int]:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise CorpusError(f"OpenCV cannot read {path}: is it an image file, and is it intact?")
    return image.shape[0], image.shape[1]
