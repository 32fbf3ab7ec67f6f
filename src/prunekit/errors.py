"""The one exception type users see: a one-line message that names the problem and the fix."""


class PrunekitError(Exception):
    """A user-facing error; the CLI prints its message on one line and exits with status 2."""
