"""influence-patterns: gradient-based influence patterns through BERT-style encoders.

``Explainer.from_pretrained("default-mlm").explain("the boy [MASK] here", targets=("is", "are"))``
"""

from influence_patterns.attribution.inputs import Query
from influence_patterns.explainer import ExplainConfig, Explainer
from influence_patterns.result import Explanation, Pattern

__version__ = "0.1.0"

__all__ = ["Explainer", "ExplainConfig", "Explanation", "Pattern", "Query", "__version__"]
