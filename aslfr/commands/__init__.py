"""The commands behind `aslfr <command>` (and `python -m aslfr.<command>`): each parses its arguments,
calls the library and prints one line per result or error; `cli` is what they share."""
