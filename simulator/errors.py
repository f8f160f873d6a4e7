"""The one exception type for bad user input (flags, YAML, CSV)."""


class InputError(ValueError):
    """Bad input; the message is one line naming the field/row and what is allowed.

    The CLI prints it as ``blis: error: <message>`` and exits with status 2.
    """
