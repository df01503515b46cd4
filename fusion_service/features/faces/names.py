"""The face detectors' names, apart from their code: configuration lists them without importing OpenCV."""

# blazeface: the search ends at the first pass with a confirmed face (blazeface.py, MAX_PIXELS_AFTER_FACE);
# blazeface-every-scale: every pass always (small faces beside a near one in large frames too, at the cost of the
# finest pass on every frame); haar: OpenCV's cascade.
DETECTOR_NAMES = ("blazeface", "blazeface-every-scale", "haar")
DEFAULT_DETECTOR = "blazeface"
