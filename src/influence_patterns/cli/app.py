"""The Typer application and the shared error handling of every command."""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable, TypeVar

import typer

from influence_patterns.errors import InfluencePatternsError, printable

app = typer.Typer(
    name="influence-patterns",
    help="Influence patterns: how information flows through BERT-style encoders (GPR).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str) -> None:
    """Print a one-line error to stderr and exit with code 2 (control characters escaped)."""
    typer.echo(f"Error: {printable(message)}", err=True)
    raise typer.Exit(code=2)


def user_errors(func: F) -> F:
    """Turn the library's input errors into one line on stderr and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except InfluencePatternsError as exc:
            fail(str(exc))
        except FileNotFoundError as exc:
            fail(f"file not found: {exc.filename or exc}")
        except KeyboardInterrupt:
            typer.echo("Interrupted.", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]
