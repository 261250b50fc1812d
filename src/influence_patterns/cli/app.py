"""The Typer application and the shared error handling of every command."""

from __future__ import annotations

import functools
import inspect
import re
import sys
from typing import Any, Callable, TypeVar

import typer

from influence_patterns.errors import InfluencePatternsError, printable

#: The terms the commands use, one line each (also in the README's glossary).
GLOSSARY = (
    "Terms. "
    "QoI (quantity of interest): the number explained, a logit margin: logit[good] − logit[bad] "
    "at the [MASK] of a masked LM, logit[class] − logit[other] of a classifier; the model is "
    "right when it is > 0. "
    "Influence: how much of the QoI a token (or a path) accounts for, by Integrated Gradients "
    "from a baseline input (all [MASK] by default) over integration points α. "
    "Pattern: the path, one node per layer, that carries most of a token's influence; π^e is "
    "the token-level pattern (a position per layer), π^a the head-level one (an attention head "
    "or the skip per layer). "
    "GPR (Guided Pattern Refinement): the greedy search that finds patterns, layer by layer. "
    "Skip: the residual connection around a layer's attention. "
    "Layers are numbered from 1 (L1 is the first encoder layer, h0 the embeddings), heads "
    "from 0 (H0), word-piece positions from 0 ([CLS] is 0). "
    "Role: what a word is in a task's sentence (subject, attractor, verb ...). "
    "Consistency: how often instances of a task share the same pattern."
)

app = typer.Typer(
    name="influence-patterns",
    help="Influence patterns: which paths through a BERT-style encoder carry each token's "
         "influence to a prediction, found by GPR (Lu et al., NeurIPS 2021).",
    epilog=GLOSSARY,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: no <bool> on flags, more room for descriptions
)


def reflow(text: str | None) -> str | None:
    """Join the lines of each paragraph, so ``--help`` wraps sentences at the terminal's width."""
    if not text:
        return text
    paragraphs = re.split(r"\n\s*\n", inspect.cleandoc(text))
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs)


def reflow_help(typer_app: typer.Typer) -> None:
    """Give every command (and sub-command) its docstring reflowed as help."""
    for info in typer_app.registered_commands:
        info.help = reflow(info.help or (info.callback.__doc__ if info.callback else None))
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            reflow_help(group.typer_instance)



def _readable_argument_names() -> None:
    """Name arguments in upper case in usage and help (``explain [OPTIONS] TEXT``, not
    ``{text}``), as click and most command-line tools do."""
    from typer.core import TyperArgument

    def usage(self: Any) -> str:
        name = (self.metavar or self.name or "").upper()
        name = name if self.required else f"[{name}]"
        return name + ("..." if self.nargs != 1 else "")

    def shown(self: Any) -> str:
        return (self.metavar or self.name or "").upper() + ("..." if self.metavar is None and self.nargs != 1 else "")

    if hasattr(TyperArgument, "_usage_display_name"):
        TyperArgument._usage_display_name = usage
    if hasattr(TyperArgument, "_rich_display_name"):
        TyperArgument._rich_display_name = shown


_readable_argument_names()

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str) -> None:
    """Print a one-line error to stderr and exit with code 2 (control characters escaped)."""
    typer.echo(f"Error: {printable(message)}", err=True)
    raise typer.Exit(code=2)


def os_message(exc: OSError) -> str:
    """One line for an operating-system error: the path (when there is one) and the reason."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename is not None:
        return f"cannot access {exc.filename}: {reason}"
    return f"cannot write the output: {reason}"


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
        except RecursionError:
            fail("the input is nested too deeply to read")
        except OSError as exc:  # permission denied on a path we only looked at, a full terminal pipe ...
            fail(os_message(exc))
        except KeyboardInterrupt:
            typer.echo("Interrupted.", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]
