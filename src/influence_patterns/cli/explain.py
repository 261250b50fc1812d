"""``influence-patterns explain``: the influence patterns of one sentence."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from influence_patterns.cli.app import app, user_errors
from influence_patterns.cli.plot import (
    DEFAULT_DPI, DPI_HELP, check_image_path, parse_sources, resolve_sources, save_figure,
)
from influence_patterns.attribution.baselines import BASELINES
from influence_patterns.attribution.qoi import QOIS
from influence_patterns.attribution.quadrature import QUADRATURES
from influence_patterns.errors import InputError
from influence_patterns.fileio import check_writable
from influence_patterns.config import ExplainConfig  # the defaults: ExplainConfig.method, ...
from influence_patterns.search.methods import GPR_METHODS
from influence_patterns.models.loading import DEVICES

DEFAULT_MODEL = "default-mlm"


@app.command("explain")
@user_errors
def explain_command(
    text: str = typer.Argument(..., help="The sentence to explain. For a masked LM it holds one [MASK]; for a "
                                       "causal LM (GPT-2, Pythia, Llama, ...) it is the text the targets continue."),
    targets: Optional[str] = typer.Option(
        None, "--targets", "-t",
        help="Masked LM: the right and the wrong word for the [MASK], as GOOD,BAD (e.g. is,are); "
             "causal LM: the right and the wrong next word after the text. "
             "The QoI is the logit of GOOD minus the logit of BAD.",
    ),
    label: Optional[int] = typer.Option(
        None, "--label", help="Classifier: the class whose margin is explained (default: the model's prediction)."
    ),
    model: str = typer.Option(
        DEFAULT_MODEL, "--model", "-m",
        help="The model: default-mlm, default-sst2, default-clm (a small decoder), a checkpoint directory or a hub name.",
    ),
    steps: Optional[int] = typer.Option(
        None, "--steps",
        help="Integration points along the path from baseline to input: Gauss–Legendre points "
             "(default 32), or m for the Riemann rule (m+1 points; default 50).",
    ),
    method: str = typer.Option(ExplainConfig.method, "--method", help=GPR_METHODS.help("The search:")),
    baseline: str = typer.Option(ExplainConfig.baseline, "--baseline", help=BASELINES.help("The input integrated from:")),
    qoi: Optional[str] = typer.Option(
        None, "--qoi", help=QOIS.help("The quantity of interest (default: the one of the model's kind):")
    ),
    keep_special: bool = typer.Option(False, "--keep-special", help="Keep [CLS] and [SEP] real in the baseline."),
    quadrature: Optional[str] = typer.Option(None, "--quadrature", help=QUADRATURES.help("The integration rule:")),
    max_batch: Optional[int] = typer.Option(
        None, "--max-batch",
        help="Rows per backward pass: integration points α (fast-full: source token × α pairs); default: sized to free memory.",
    ),
    device: str = typer.Option("auto", "--device", help=DEVICES.help()),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the explanation as JSON to this file."),
    plot: Optional[Path] = typer.Option(
        None, "--plot", help="Draw the patterns to this file: .svg, .png, .pdf, or .html (interactive)."
    ),
    dpi: int = typer.Option(DEFAULT_DPI, "--dpi", min=30, max=1200, help=DPI_HELP),
    sources: Optional[str] = typer.Option(
        None, "--sources", "-s",
        help="Explain only these sources, comma-separated: words (all their word pieces; the@2 for the second "
             "'the'), e.g. keys,cabinet, or word-piece positions ([CLS] is 0; e.g. 2 for 'authors'). "
             "The cost grows linearly with the number of sources.",
    ),
    by_word: bool = typer.Option(
        False, "--by-word",
        help="One row per word instead of per word piece: the word's g and influences summed over its "
             "pieces, its first piece's pattern, the pieces listed (also in --json and --csv).",
    ),
    csv_out: Optional[Path] = typer.Option(None, "--csv", help="Write the table as CSV to this file."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Find each source token's influence pattern with GPR and print them as a table.

    A pattern is the path, one node per layer, that carries most of a token's influence
    on the QoI (the quantity of interest: a logit margin). Layers are numbered from 1,
    heads from 0; "skip" is the residual connection around a layer's attention.
    """
    from influence_patterns.explainer import Explainer  # torch: loaded when the command runs

    _check_outputs(plot, json_out, csv_out)  # before the model is loaded: a refused write loses no work
    parsed = parse_sources(sources, "--sources")
    explainer = Explainer.from_pretrained(
        model, device=device, steps=steps, method=method, baseline=baseline,
        keep_special=keep_special, quadrature=quadrature, max_rows=max_batch, qoi=qoi,
    )
    if explainer.kind == "mlm" and targets is None:
        raise InputError("a masked-LM explanation needs --targets GOOD,BAD (e.g. --targets is,are)")
    if explainer.kind == "causal" and targets is None:
        raise InputError("a causal-LM explanation needs --targets GOOD,BAD, two continuations of the text "
                         "(e.g. 'the keys to the cabinet' --targets are,is)")
    chosen = resolve_sources(parsed, _tokens(explainer, text), "--sources")
    result = explainer.explain(text, targets=targets, label=label, sources=chosen,
                               progress=False if quiet else None)
    _show_and_write(result, by_word, json_out, csv_out, plot, dpi)


def _check_outputs(plot: Optional[Path], json_out: Optional[Path], csv_out: Optional[Path]) -> None:
    """Every output path checked before any work."""
    if plot is not None:
        check_image_path(plot, "--plot")
        check_writable(plot, "--plot")
    if json_out is not None:
        check_writable(json_out, "--json")
    if csv_out is not None:
        check_writable(csv_out, "--csv")


def _show_and_write(result: Any, by_word: bool, json_out: Optional[Path], csv_out: Optional[Path],
                    plot: Optional[Path], dpi: int) -> None:
    """The table (per piece or per word), then each requested file."""
    if by_word:
        from influence_patterns.viz.terminal import print_words

        print_words(result)
        result.extra["words"] = result.by_word()
    else:
        result.show()
    if json_out is not None:
        result.save(json_out)
        typer.echo(f"Wrote {json_out}")
    if csv_out is not None:
        from influence_patterns.fileio import write_text

        write_text(csv_out, result.to_dataframe(by="word" if by_word else "piece").to_csv(index=False))
        typer.echo(f"Wrote {csv_out}")
    if plot is not None:
        save_figure(result, plot, dpi=dpi)
        typer.echo(f"Wrote {plot}")


def _tokens(explainer: Any, text: str) -> list[str]:
    """The word pieces the explainer will see for ``text`` (specials included)."""
    from influence_patterns.attribution.inputs import with_mask_token

    tok = explainer.tokenizer
    return list(tok.convert_ids_to_tokens(tok(with_mask_token(tok, text))["input_ids"]))
