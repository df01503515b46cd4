"""Tests of the development model server.

They run in the TensorFlow environment (`.venv-ml/bin/python -m pytest -m ml`), except
test_wire_compat.py, which runs without TensorFlow and calls .venv-ml itself in subprocesses. In an
environment without TensorFlow the TensorFlow modules are not collected at all (they could not even
be imported), so `pytest -m "not ml"` there runs test_wire_compat.py alone.
"""

import importlib.util

if importlib.util.find_spec("tensorflow") is None:
    collect_ignore_glob = ["test_dev_server_*.py"]
