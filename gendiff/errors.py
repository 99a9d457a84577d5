"""The one exception type users see: a one-line message naming the input and what to do."""


class GendiffError(Exception):
    """Bad input or an unusable environment; ``str(error)`` is the whole user-facing message."""
