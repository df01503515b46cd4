"""Where exported models live and which version a model server would serve: shared by every training CLI."""

from __future__ import annotations

from pathlib import Path

DEFAULT_REPOSITORY = Path(__file__).resolve().parent.parent / "model_repository"


def newest_version(repository: Path, modality: str) -> Path:
    """The highest numbered version directory, as a model server would serve it."""
    model_dir = repository / modality
    versions = sorted((int(p.name) for p in model_dir.glob("*") if p.is_dir() and p.name.isdigit()), reverse=True)
    if not versions:
        raise SystemExit(
            f"no exported {modality} model in {model_dir}; train one (python -m training.train_{modality}) "
            "or pass --model"
        )
    return model_dir / str(versions[0])
