"""Similar-patient retrieval for one new ECG against a database of embeddings (`ptacl embed`).

The database is an .npz written by `ptacl embed`: `eids` (N,) str, `ecg` (N, D_e) and `cmr`
(N, D_c) embeddings, `phenotypes` (N, 10) in PHENOTYPES order; optionally `encoder_id`, the
fingerprint of the ECG encoder that made them (`ptacl.inference.encoder_fingerprint`). It is
read with `allow_pickle=False`: an object array in it is refused, never unpickled.

Comparing embeddings only makes sense within one model. ECG against CMR uses the aligned run's
shared space (the ECG projection head); ECG against ECG uses the space whose width matches the
database. When the database carries `encoder_id`, a different bundle is refused; when it does
not, the check is on widths alone and a warning says so.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ptacl.inference.predictor import Predictor, Source
from ptacl.phenotypes import PHENOTYPES


class DatabaseError(ValueError):
    """An embeddings file that is missing, unsafe or does not fit the bundle."""


@dataclass(frozen=True)
class EmbeddingDatabase:
    path: Path
    eids: np.ndarray  # (N,) str
    ecg: np.ndarray | None  # (N, D_e)
    cmr: np.ndarray | None  # (N, D_c)
    phenotypes: np.ndarray | None  # (N, 10)
    encoder_id: str | None


def load_database(path: str | Path) -> EmbeddingDatabase:
    path = Path(path)
    if not path.is_file():
        raise DatabaseError(f"{path}: embeddings file not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except ValueError as e:  # numpy refuses object arrays without allow_pickle
        raise DatabaseError(
            f"{path}: refused, holds pickled objects or is not an .npz ({e})"
        ) from e
    except (OSError, EOFError) as e:
        raise DatabaseError(f"{path}: not a readable .npz file ({e})") from e
    if "eids" not in arrays:
        raise DatabaseError(f"{path}: has no 'eids' array (keys: {sorted(arrays)})")
    n = len(arrays["eids"])
    for key in ("ecg", "cmr", "phenotypes"):
        if key in arrays and (arrays[key].ndim != 2 or len(arrays[key]) != n):
            raise DatabaseError(f"{path}: '{key}' has shape {arrays[key].shape} for {n} eids")
    if "phenotypes" in arrays and arrays["phenotypes"].shape[1] != len(PHENOTYPES):
        raise DatabaseError(
            f"{path}: 'phenotypes' has {arrays['phenotypes'].shape[1]} columns, "
            f"expected {len(PHENOTYPES)}"
        )
    encoder_id = arrays.get("encoder_id")
    return EmbeddingDatabase(
        path=path,
        eids=arrays["eids"].astype(str),
        ecg=arrays.get("ecg"),
        cmr=arrays.get("cmr"),
        phenotypes=arrays.get("phenotypes"),
        encoder_id=None if encoder_id is None else str(encoder_id.reshape(-1)[0]),
    )


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


def retrieve(
    predictor: Predictor,
    source: Source,
    database: EmbeddingDatabase,
    *,
    k: int = 10,
    against: str = "cmr",
    fs: float | None = None,
) -> pd.DataFrame:
    """The k database subjects most similar to the ECG `source`: rank, eid, cosine, phenotypes."""
    if against not in ("cmr", "ecg"):
        raise ValueError(f"against must be 'cmr' or 'ecg', got {against!r}")
    target = database.cmr if against == "cmr" else database.ecg
    if target is None:
        raise DatabaseError(f"{database.path}: has no '{against}' embeddings")
    config = predictor.bundle.config["embedding"]
    where = f"{database.path} vs {predictor.bundle.root}"
    if database.encoder_id is not None and database.encoder_id != config["encoder_id"]:
        raise DatabaseError(
            f"{where}: the embeddings were made by another encoder (encoder_id "
            f"{database.encoder_id[:12]}…, the bundle's is {config['encoder_id'][:12]}…)"
        )
    width = target.shape[1]
    if against == "cmr":
        if config.get("shared_dim") is None:
            raise DatabaseError(
                f"{where}: the bundle has no ECG projection head (not an aligned run), so its "
                "ECG embeddings cannot be compared with CMR embeddings"
            )
        space = "shared"
    else:
        space = "shared" if width == config.get("shared_dim") else "encoder"
    expected = config["shared_dim"] if space == "shared" else config["dim"]
    if width != expected:
        raise DatabaseError(
            f"{where}: database '{against}' embeddings have width {width}, the bundle's "
            f"{space} space {expected}: not the same model"
        )
    if database.encoder_id is None:
        warnings.warn(
            f"{database.path}: carries no encoder_id, so only the widths ({width}) show that it "
            "was made by the bundle's model",
            stacklevel=2,
        )
    query = predictor.embed(source, fs, space=space)
    order, similarity = cosine_ranking(query, target, k)
    table = pd.DataFrame(
        {"rank": np.arange(1, len(order) + 1), "eid": database.eids[order], "cosine": similarity}
    )
    if database.phenotypes is not None:
        table = pd.concat(
            [table, pd.DataFrame(database.phenotypes[order], columns=list(PHENOTYPES))], axis=1
        )
    return table
