"""The typer application and the entry point of the ``tcpwatch`` command."""

import logging
import os
import sys

import typer

from tcpwatch import __version__
from tcpwatch.errors import TcpwatchError

app = typer.Typer(
    name="tcpwatch",
    help=(
        "Rebuild TCP connections from capture files or a live interface and show "
        "how each one opened, carried data and closed."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        print(f"tcpwatch {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Log debug messages to standard error."
    ),
    version: bool = typer.Option(
        False,
        "--version",
        callback=_version,
        is_eager=True,
        help="Print the version and exit.",
    ),
) -> None:
    if verbose:
        from rich.logging import RichHandler

        logging.basicConfig(
            level=logging.DEBUG,
            format="%(name)s %(message)s",
            handlers=[RichHandler(show_path=False)],
        )


def _register() -> None:
    """Add each command module's commands to ``app``."""
    from tcpwatch.cli import audit, demo, live, read, replay

    read.register(app)
    audit.register(app)
    live.register(app)
    demo.register(app)
    replay.register(app)


_register()


def main() -> None:
    """Run the command line; user errors print one line and exit with status 2."""
    stdout_at_start = _identity(1)
    try:
        app()
    except SystemExit as done:
        if done.code == 1 and _stdout_closed_by_reader(stdout_at_start):
            sys.exit(BROKEN_PIPE_STATUS)
        raise
    except TcpwatchError as error:
        print(f"tcpwatch: error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        # The reader of our output went away (e.g. `| head`).
        sys.stderr.close()
        sys.exit(BROKEN_PIPE_STATUS)


BROKEN_PIPE_STATUS = 141
"""Exit status when the reader of standard output went away, as with
``| head``: the shell's status for a program killed by SIGPIPE, as tcpdump
gets, so that it differs from a damaged capture's status 1."""


def _stdout_closed_by_reader(at_start: tuple[int, int] | None) -> bool:
    """Return whether a library ended the command because stdout's reader left.

    Both exit with status 1, the status tcpwatch gives a damaged capture, and
    each leaves a mark. On EPIPE, typer's copy of click replaces
    ``sys.stdout`` with a wrapper that ignores the final flush, and rich
    points file descriptor 1 at /dev/null.
    """
    if type(sys.stdout).__name__ == "PacifyFlushWrapper":
        return True
    return at_start is not None and _identity(1) != at_start


def _identity(fd: int) -> tuple[int, int] | None:
    """Return the device and inode that ``fd`` refers to, None if it is closed."""
    try:
        status = os.fstat(fd)
    except OSError:
        return None
    return status.st_dev, status.st_ino
