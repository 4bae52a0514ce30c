"""The one exception type for problems with what the user gave us.

The CLI prints its message as a single line and exits non-zero; anything else is a bug and keeps its
traceback.  Messages name the file, node or field at fault.
"""


class SpartanError(Exception):
    """Bad input: a file, a model node, a budget or plan field, a simulation input."""
