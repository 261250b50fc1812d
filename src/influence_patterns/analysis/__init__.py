"""The paper's analyses of data-set runs (docs/method.md#analyses; definitions in docs/analyses.md).
Everything here returns data; printing and drawing live in ``influence_patterns.viz``.

- :func:`analyze_run` / :func:`analyze_runs`: accuracy, skip vs heads (CIs, ceiling,
  random-init null), consistency, consistency vs accuracy;
- :data:`ABLATION_METHODS` / :func:`register_method`: patterns, baseline explanations and
  controls, one node per layer;
- :func:`ablate_run`: compression (keep only) and removal of each method's nodes, with
  paired-bootstrap CIs and verdicts;
- :func:`findings`: the report's numbers (``viz.report_html.write_report`` renders them);
- :func:`analysis_frame` / :func:`ablation_frame`: those results as pandas DataFrames
  (one row per number, with its CI), :func:`write_csv`.
"""

from influence_patterns.analysis.ablation import AblationOptions, ablate_run
from influence_patterns.analysis.analyze import AnalyzeOptions, analyze_run, analyze_runs
from influence_patterns.analysis.methods import ABLATION_METHODS, Method, NodePath, register_method
from influence_patterns.analysis.frames import ablation_frame, analysis_frame, write_csv
from influence_patterns.analysis.report import ReportOptions, findings

__all__ = ["ABLATION_METHODS", "AblationOptions", "AnalyzeOptions", "Method", "NodePath", "ReportOptions", "ablate_run",
           "ablation_frame", "analysis_frame", "analyze_run", "analyze_runs", "findings", "register_method",
           "write_csv"]
