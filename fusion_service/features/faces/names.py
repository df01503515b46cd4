"""The face detectors' names, apart from their code: configuration lists them without importing OpenCV."""

# blazeface: the finer passes only where the coarser ones find no face; blazeface-every-scale: every pass always
# (small faces beside a large one too, at the cost of the finest pass on every frame); haar: OpenCV's cascade.
DETECTOR_NAMES = ("blazeface", "blazeface-every-scale", "haar")
DEFAULT_DETECTOR = "blazeface"
