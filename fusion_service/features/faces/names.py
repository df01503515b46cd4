"""The face detectors' names, apart from their code: configuration lists them without importing OpenCV."""

# blazeface: a finer second pass only where the first finds no face; blazeface-every-scale: always both passes
# (small faces beside a large one too, about seven times the cost); haar: OpenCV's cascade.
DETECTOR_NAMES = ("blazeface", "blazeface-every-scale", "haar")
DEFAULT_DETECTOR = "blazeface"
