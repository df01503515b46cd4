"""`python -m fusion_service [--help]`: run the fusion service."""

from __future__ import annotations

import asyncio
import logging
import os
import sys

# Small numpy operations on 2 cores: a BLAS thread pool costs more than it gives.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def main(argv: list[str] | None = None) -> None:
    from fusion_service.config import parse_settings
    from fusion_service.server import StartupError, serve

    settings = parse_settings(argv)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        asyncio.run(serve(settings))
    except StartupError as error:
        raise SystemExit(f"fusion service cannot start: {error}") from None


if __name__ == "__main__":
    main()
