"""ptacl: Patient and Temporal Alignment Contrastive Learning between 12-lead ECG and cine CMR.

    model = ptacl.load("bundle")                         # a Predictor: predict, embed, to
    ptacl.retrieve(model, "ecg.xml", "emb/test.npz", k=5)   # similar patients

`import ptacl` stays light: no logger, launcher or plotting library is imported here, and
torch only when `load` or `retrieve` is called.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from ptacl.embedding.file import Embeddings
    from ptacl.inference import Predictor

__version__ = "0.1.0"


def load(bundle: str | os.PathLike[str], *, device: str = "cpu") -> Predictor:
    """Load an inference bundle written by `ptacl export`: `ptacl.load(b).predict(path_or_array)`.

    Imports torch and the model code only when called, so `import ptacl` stays light.
    """
    from ptacl.inference import load as load_bundle

    return load_bundle(bundle, device=device)


def retrieve(
    model: Predictor | str | os.PathLike[str],
    ecg: str | os.PathLike[str] | np.ndarray,
    database: Embeddings | str | os.PathLike[str],
    *,
    k: int = 10,
    against: str = "cmr",
    fs: float | None = None,
) -> pd.DataFrame:
    """The k patients of `database` (an .npz of `ptacl embed`) most similar to one ECG, as
    `ptacl retrieve`: rank, eid, cosine, their phenotypes. `model` is a bundle or `ptacl.load`'s
    predictor; `against` "cmr" (their CMRs, an aligned run's bundle) or "ecg" (their ECGs).

        ptacl.retrieve("bundle", "1000037_20205_2_0.xml", "emb/test.npz", k=5)
    """
    from ptacl.inference import Predictor
    from ptacl.inference.retrieve import load_database
    from ptacl.inference.retrieve import retrieve as rank

    predictor = model if isinstance(model, Predictor) else load(model)
    name = "database" if not isinstance(database, str | os.PathLike) else os.fspath(database)
    if isinstance(database, str | os.PathLike):
        database = load_database(database)
    return rank(predictor, ecg, database, k=k, against=against, fs=fs, path=name)
