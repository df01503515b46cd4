"""The face detectors' names, apart from their code: configuration lists them without importing OpenCV."""

DETECTOR_NAMES = ("blazeface", "haar")
DEFAULT_DETECTOR = "blazeface"
