"""The typer application and the entry point of the ``tcpwatch`` command."""

import logging
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
    try:
        app()
    except TcpwatchError as error:
        print(f"tcpwatch: error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        # The reader of our output went away (e.g. `| head`): not an error.
        sys.stderr.close()
        sys.exit(0)
