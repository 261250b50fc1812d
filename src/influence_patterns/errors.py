"""User-facing errors. The CLI prints these as one line and exits with code 2."""


class InfluencePatternsError(Exception):
    """Base class for errors caused by bad input (text, targets, model, data file)."""


class InputError(InfluencePatternsError, ValueError):
    """The text, targets or options given for an explanation are not usable."""


class ModelError(InfluencePatternsError):
    """The model cannot be loaded or is not a supported architecture."""


class DataError(InfluencePatternsError, ValueError):
    """A data file is malformed; the message names the file and line."""


class OutputError(InfluencePatternsError, OSError):
    """A result could not be written (permission, a directory in the way, disk full)."""


def printable(text: str) -> str:
    """``text`` safe to print on a terminal: control characters (ANSI escapes, carriage
    returns, bells, ...) are shown escaped (``\\x1b``), never sent raw."""
    return "".join(
        ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape").decode("ascii")
        for ch in str(text)
    )
