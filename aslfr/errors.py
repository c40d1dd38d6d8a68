"""One exception type for bad input, so the CLI can print it as one line without a traceback."""


class InputError(ValueError):
    """Bad input data or configuration; the message names the file, the sequence and the problem."""
