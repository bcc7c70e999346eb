"""Find the patients most similar to one ECG in a database of embeddings from `ptacl embed`.

    ptacl retrieve --model BUNDLE --ecg FILE --database EMBEDDINGS.npz --k 10 [--out top.csv]

By default the query ECG is compared with the database's CMR embeddings (cross-modal retrieval,
as in the paper's Table 1), which needs a bundle exported from an aligned run and a database
embedded with that same run; `--against ecg` compares with the database's ECG embeddings.
Prints rank, eid, cosine similarity and each retrieved patient's phenotypes.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    from ptacl.cli.common import at_least_one

    parser = argparse.ArgumentParser(
        prog="ptacl retrieve",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", type=Path, required=True, help="bundle from `ptacl export`")
    parser.add_argument("--ecg", type=Path, required=True, help="the query ECG file")
    parser.add_argument("--database", type=Path, required=True, help=".npz from `ptacl embed`")
    parser.add_argument("--k", type=at_least_one, default=10, help="how many patients (default 10)")
    parser.add_argument("--against", choices=("cmr", "ecg"), default="cmr")
    parser.add_argument("--fs", type=float, help="sampling rate in Hz, for .npy/.npz arrays")
    parser.add_argument("--out", type=Path, help="also write the table to this CSV")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import pandas as pd

    from ptacl.eval.embed import EmbedError
    from ptacl.inference import BundleError, Predictor
    from ptacl.inference.retrieve import DatabaseError, load_database, retrieve
    from ptacl.io import InputError

    try:
        predictor = Predictor(args.model)
        database = load_database(args.database)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            table = retrieve(
                predictor,
                args.ecg,
                database,
                k=args.k,
                against=args.against,
                fs=args.fs,
                path=str(args.database),
            )
    except (BundleError, DatabaseError, EmbedError, InputError) as e:
        print(f"ptacl retrieve: {e}", file=sys.stderr)
        return 1
    for warning in caught:
        print(f"ptacl retrieve: warning: {warning.message}", file=sys.stderr)
    with pd.option_context("display.width", 200, "display.max_columns", None):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
