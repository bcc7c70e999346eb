"""Evaluation: similar-patient retrieval, linear probing, bootstrap CIs and the report.

Importing `ptacl.eval` pulls no plotting library; `ptacl.eval.figures` imports matplotlib itself.
"""

from ptacl.eval.random_baseline import (
    random_retrieval_baseline,
    random_retrieval_scores,
    summarize_random,
)
from ptacl.eval.retrieval import retrieval_metrics, retrieval_scores, summarize_retrieval

__all__ = [
    "random_retrieval_baseline",
    "random_retrieval_scores",
    "retrieval_metrics",
    "retrieval_scores",
    "summarize_random",
    "summarize_retrieval",
]
