"""Checks on files the commands will write, made before any work starts."""

import os
from pathlib import Path

from tcpwatch.errors import UsageError
from tcpwatch.render.style import printable


def check_output_path(path: Path, option: str) -> None:
    """Raise ``UsageError`` unless ``path`` can be created or overwritten.

    Runs before a capture is read or recorded, so a typo in an output path
    costs nothing and is reported in one line instead of a traceback at the end.
    """
    shown = printable(str(path))
    try:
        _check_writable(path, option, shown)
    except PermissionError:
        # pathlib's checks raise when a directory on the way cannot be entered.
        raise UsageError(
            f"{option} {shown} cannot be written: permission denied on the way "
            "to it; choose a path you can write to"
        ) from None


def _check_writable(path: Path, option: str, shown: str) -> None:
    if path.is_dir():
        raise UsageError(f"{option} {shown} is a directory; give a file name")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(
            f"{option} {shown} cannot be written: the directory "
            f"{printable(str(parent))} does not exist; create it or choose another path"
        )
    target = path if path.exists() else parent
    if not os.access(target, os.W_OK):
        raise UsageError(
            f"{option} {shown} cannot be written: permission denied; "
            "choose a path you can write to"
        )


def write_failed(path: Path, option: str, error: OSError) -> UsageError:
    """Return the error for a write to ``path`` that failed after the checks."""
    reason = error.strerror or str(error)
    return UsageError(f"{option} {printable(str(path))} could not be written: {reason}")
