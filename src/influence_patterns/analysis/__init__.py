"""The paper's analyses of data-set runs (DESIGN §6; definitions in docs/analyses.md).

- :func:`analyze_run` / :func:`analyze_runs`: accuracy, skip vs heads, consistency,
  consistency–accuracy correlation;
- :data:`METHODS` / :func:`register_method`: patterns and baseline explanations, one
  node per layer;
- :func:`ablate_run`: remove / keep only each method's nodes;
- :func:`write_report`: the three findings beside the paper's figures.
"""

from influence_patterns.analysis.ablation import ablate_run
from influence_patterns.analysis.analyze import analyze_run, analyze_runs
from influence_patterns.analysis.baselines import METHODS, Method, NodePath, register_method
from influence_patterns.analysis.report import write_report

__all__ = ["METHODS", "Method", "NodePath", "ablate_run", "analyze_run", "analyze_runs", "register_method", "write_report"]
