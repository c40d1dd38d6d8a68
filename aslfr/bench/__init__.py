"""`make bench` (`python -m aslfr.bench`, `aslfr bench`): speed and memory of the converter and the
readers, measured from outside the code they time. Nothing outside this package imports it."""
