"""Hand-made retrieval inputs shared by the tests of ptacl.eval.retrieval, random_baseline and
collapse (a plain module: test modules never import each other or conftest)."""

import numpy as np
import pandas as pd


def hand_case() -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    # Database = unit vectors, so every similarity is exact and the order is easy to read:
    # query 0 ranks 1, 2, 3; query 1 ranks 3, 2, 0; query 2 ranks 0, 1, 3; query 3 ranks 2, 1, 0.
    cmr = np.eye(4)
    ecg = np.array([[0, 3, 2, 1], [1, 0, 2, 3], [3, 2, 0, 1], [1, 2, 3, 0]], dtype=float)
    pheno = pd.DataFrame({"a": [0.0, 10.0, 1.0, 0.5], "b": [1.0, np.nan, 1.4, 3.0]})
    return ecg, cmr, pheno
