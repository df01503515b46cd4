"""The face detectors' names, apart from their code: configuration lists them without importing OpenCV."""

# blazeface: once a face is found, the finer passes only up to a 640x480 frame's input (blazeface.py);
# blazeface-every-scale: every pass always (small faces beside a near one in large frames too, at the cost of the
# finest pass on every frame); haar: OpenCV's cascade.
DETECTOR_NAMES = ("blazeface", "blazeface-every-scale", "haar")
DEFAULT_DETECTOR = "blazeface"
