"""The one exception type for bad user input (flags, YAML, CSV), and the one-line rule its
messages follow."""
from typing import Any


def one_line(text: Any) -> str:
    """``text`` with all whitespace runs collapsed to single spaces (errors are one line)."""
    return " ".join(str(text).split())


class InputError(ValueError):
    """Bad input; the message is one line naming the field/row and what is allowed.

    The CLI prints it as ``blis: error: <message>`` and exits with status 2.
    """
