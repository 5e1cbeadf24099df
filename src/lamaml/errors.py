"""The two kinds of failure a user can meet, kept apart so the CLI can answer each properly.

``UserError``: the input is wrong (a bad value, a missing file). One line, exit status 2.
``RunFailed``: the run itself went wrong (a loss became NaN). One line, exit status 1.
``WriteFailed``: a ``RunFailed`` that is also an ``OSError``: a file could not be written (a full
disk, no permission); its message names the file.
Anything else is a bug and keeps its traceback.
"""


def one_line(text: str) -> str:
    """``text`` with every control character escaped, so a user's ``--set x=$'a\\nb'`` can't split the message."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


class LamamlError(Exception):
    exit_code = 1

    def __init__(self, message: object = "", *args: object) -> None:
        super().__init__(one_line(str(message)), *args)


class UserError(LamamlError, ValueError):
    exit_code = 2


class DataError(UserError):
    """A data file is missing, truncated or does not match its checksum."""


class RunFailed(LamamlError, RuntimeError):
    exit_code = 1


class WriteFailed(RunFailed, OSError):
    """A file could not be written. An OSError too, so code that already catches a failed write
    (``except OSError``) still does; ``errno`` is the system's."""

    def __init__(self, message: object = "", errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno

    def __str__(self) -> str:       # the message, not OSError's "[Errno 28] ..." form
        return str(self.args[0]) if self.args else ""
