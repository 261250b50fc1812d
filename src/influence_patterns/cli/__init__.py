"""Command-line interface: a thin layer over the library, one public function per command."""

from influence_patterns.cli.app import app, reflow_help

# Each module registers its commands on ``app``.
from influence_patterns.cli import explain as _explain  # noqa: F401,E402
from influence_patterns.cli import models as _models  # noqa: F401,E402
from influence_patterns.cli import tasks as _tasks  # noqa: F401,E402
from influence_patterns.cli import runs as _runs  # noqa: F401,E402
from influence_patterns.cli import plot as _plot  # noqa: F401,E402

reflow_help(app)  # docstrings' line breaks would otherwise break sentences in --help


def main() -> None:
    """The console script: the app, with output that never fails on the terminal's encoding
    (characters it cannot show are written escaped) and a write error on stdout (a full
    disk, ``> /dev/full``) as one line and exit code 2, not a traceback."""
    import os
    import sys

    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors="backslashreplace")
            except (ValueError, OSError):
                pass
    code: object = 0
    try:
        try:
            app()
        except SystemExit as exc:
            code = exc.code
        sys.stdout.flush()
    except OSError as exc:
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        except (OSError, ValueError, AttributeError):
            pass
        if not code:  # not yet reported by the command itself
            print(f"Error: cannot write the output: {exc.strerror or exc}", file=sys.stderr)
            code = 2
    sys.exit(code)


__all__ = ["app", "main"]
