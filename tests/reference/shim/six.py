"""Stand-in for `six` (the notebook reads `six.PY2` only), or the real one where it is installed:
python-dateutil < 3 (which botocore, a test extra, pins) imports it from pandas, under this shim."""
import importlib.machinery
import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))
_real = importlib.machinery.PathFinder.find_spec("six", [p for p in sys.path if os.path.abspath(p or ".") != _here])
if _real is not None:
    _real.loader.exec_module(sys.modules[__name__])
else:
    PY2 = False
