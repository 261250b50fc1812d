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
    app()


__all__ = ["app", "main"]
