"""Similar-patient retrieval for one new ECG against a database of embeddings (`ptacl embed`).

The database is the .npz `ptacl embed` writes (`ptacl.embedding.file.Embeddings`, read without
pickles): eids, phenotypes, the mean-pooled `ecg` / `cmr` embeddings and, for an aligned run,
the projected `ecg_proj` / `cmr_proj`, plus a JSON `meta`.

Comparing embeddings only makes sense within one model. ECG against CMR (the paper's Table 1)
happens in the aligned run's shared space: the query goes through the bundle's ECG projection
head and is ranked against `cmr_proj`. ECG against ECG uses the encoder space (`ecg`). Which
model made the database is checked, strongest first: `meta["ecg_encoder_id"]` (written by
`ptacl embed`) against the bundle's encoder fingerprint (written by `ptacl export`; a mismatch
is refused: other weights, whatever the run is called); for a database from before the id, the
name of the run folder in `meta["model"]` against the bundle's source run, which records only
its name (a difference is warned about); else widths only, with a warning.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ptacl.errors import PtaclError
from ptacl.inference.predictor import Predictor
from ptacl.inference.sources import Source


class DatabaseError(PtaclError, ValueError):
    """An embeddings file that does not fit the bundle."""


def load_database(path: str | Path):
    """The embeddings file, via `ptacl.embedding.file.Embeddings.load` (EmbedError if unusable)."""
    from ptacl.embedding.file import Embeddings

    return Embeddings.load(path)


def cosine_ranking(
    query: np.ndarray, database: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """query (D,), database (N, D) -> indices (k,) of the most cosine-similar rows and their
    similarities, best first; ties keep database order. Zero vectors have similarity 0."""
    q = np.asarray(query, np.float64)
    db = np.asarray(database, np.float64)
    q = q / max(np.linalg.norm(q), 1e-12)
    norms = np.linalg.norm(db, axis=1, keepdims=True)
    similarity = (db / np.maximum(norms, 1e-12)) @ q  # (N,)
    order = np.argsort(-similarity, kind="stable")[:k]
    return order, similarity[order]


def check_same_model(predictor: Predictor, database, path: str) -> None:
    """Refuse a database made by another ECG encoder, or warn when that cannot be verified."""
    config = predictor.bundle.config
    meta = database.meta or {}
    where = f"{path} vs {predictor.bundle.root}"
    made_by = meta.get("ecg_encoder_id")
    if made_by is not None:
        if made_by != config["embedding"]["encoder_id"]:
            raise DatabaseError(
                f"{where}: the embeddings were made by another ECG encoder (encoder_id "
                f"{made_by[:12]}…, the bundle's is {config['embedding']['encoder_id'][:12]}…)"
            )
        return
    run, source = meta.get("model"), config.get("source", {}).get("run")
    if run is not None and source is not None:
        # the bundle keeps only the run folder's name (no path of the training machine)
        if Path(run).name != Path(source).name:
            warnings.warn(
                f"{where}: the embeddings come from run {run}, the bundle from run {source}; "
                "they are comparable only if these are the same run",
                stacklevel=3,
            )
        return
    warnings.warn(
        f"{path}: names neither its encoder nor its run, so only the widths show that it was "
        "made by the bundle's model",
        stacklevel=3,
    )


def retrieve(
    predictor: Predictor,
    source: Source,
    database,
    *,
    k: int = 10,
    against: str = "cmr",
    fs: float | None = None,
    path: str = "database",
) -> pd.DataFrame:
    """The k database subjects most similar to the ECG `source`: rank, eid, cosine, phenotypes.

    `database` is an `Embeddings` (see `load_database`); `path` names it in messages.
    """
    embedding = predictor.bundle.config["embedding"]
    where = f"{path} vs {predictor.bundle.root}"
    if against == "cmr":
        if embedding.get("shared_dim") is None:
            raise DatabaseError(
                f"{where}: the bundle has no ECG projection head (not an aligned run), so its "
                "ECG embeddings cannot be compared with CMR embeddings; use --against ecg"
            )
        target, space, key, expected = (
            database.cmr_proj,
            "shared",
            "cmr_proj",
            embedding["shared_dim"],
        )
    elif against == "ecg":
        target, space, key, expected = database.ecg, "encoder", "ecg", embedding["dim"]
    else:
        raise ValueError(f"against must be 'cmr' or 'ecg', got {against!r}")
    if target is None:
        raise DatabaseError(
            f"{path}: holds no '{key}' embeddings"
            + (" (embed it with the aligned run the bundle came from)" if key == "cmr_proj" else "")
        )
    if target.shape[1] != expected:
        raise DatabaseError(
            f"{where}: '{key}' embeddings have width {target.shape[1]}, the bundle's {space} "
            f"space {expected}: not the same model"
        )
    check_same_model(predictor, database, path)
    query = predictor.embed(source, fs, space=space)
    order, similarity = cosine_ranking(query, target, k)
    table = pd.DataFrame(
        {"rank": np.arange(1, len(order) + 1), "eid": database.eids[order], "cosine": similarity}
    )
    names = [str(n) for n in database.phenotype_names]
    return pd.concat([table, pd.DataFrame(database.phenotypes[order], columns=names)], axis=1)
