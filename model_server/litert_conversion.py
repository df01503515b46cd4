"""Where a version keeps its LiteRT conversion, and whether that conversion still belongs to its SavedModel.

A conversion lives in the version's assets.extra/litert/ (TF Serving ignores assets.extra/ except its warm-up
file): model.tflite, one LiteRT signature per SavedModel signature, and manifest.json, which records the digest
of the saved_model.pb and variables/ it was converted from. A version whose files changed since (a re-export,
a copied-over variables/) no longer matches its manifest, and its conversion is not used. training/litert_export.py
writes conversions; this module only reads them, without TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from model_server.source import SAVED_MODEL_FILE

log = logging.getLogger(__name__)

CONVERSION_DIR = Path("assets.extra") / "litert"
MODEL_FILE = "model.tflite"
MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = 1
_VARIABLES_DIR = "variables"


@dataclass(frozen=True)
class Conversion:
    """A version's LiteRT model that matches its SavedModel."""

    model_path: Path
    manifest: dict


def saved_model_digest(export_dir: str | Path) -> str:
    """sha256 over saved_model.pb and every file of variables/ (names and contents): what Predict computes from."""
    export_dir = Path(export_dir)
    files = [export_dir / SAVED_MODEL_FILE]
    variables = export_dir / _VARIABLES_DIR
    if variables.is_dir():
        files += sorted(path for path in variables.rglob("*") if path.is_file())
    digest = hashlib.sha256()
    for path in files:
        name = path.relative_to(export_dir).as_posix().encode()
        content = path.read_bytes()
        digest.update(len(name).to_bytes(8, "little") + name + len(content).to_bytes(8, "little"))
        digest.update(content)
    return "sha256:" + digest.hexdigest()


def find_conversion(export_dir: str | Path) -> Conversion | None:
    """The version's conversion, or None (logged) when it has none, or one that does not match its SavedModel."""
    directory = Path(export_dir) / CONVERSION_DIR
    model_path, manifest_path = directory / MODEL_FILE, directory / MANIFEST_FILE
    if not model_path.is_file() or not manifest_path.is_file():
        log.info("No LiteRT conversion at %s", directory)
        return None
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as error:
        log.warning("Not using the LiteRT conversion at %s: unreadable %s (%s)", directory, MANIFEST_FILE, error)
        return None
    if manifest.get("format") != MANIFEST_FORMAT:
        log.warning("Not using the LiteRT conversion at %s: manifest format %r, expected %d; convert the version "
                    "again (python -m training.litert_export %s)", directory, manifest.get("format"),
                    MANIFEST_FORMAT, export_dir)
        return None
    digest = saved_model_digest(export_dir)
    if manifest.get("saved_model_digest") != digest:
        log.warning("Not using the LiteRT conversion at %s: it was converted from another SavedModel (digest %s, "
                    "the version's is %s); convert it again (python -m training.litert_export %s)", directory,
                    manifest.get("saved_model_digest"), digest, export_dir)
        return None
    return Conversion(model_path, manifest)
