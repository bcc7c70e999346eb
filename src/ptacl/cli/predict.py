"""Predict the 10 CMR phenotypes from ECG files with an exported bundle.

    ptacl predict --model BUNDLE --ecg a.xml b.dcm rec.hea --out predictions.csv [--embeddings]
    ptacl predict --model BUNDLE --ecg @files.txt --out predictions.csv   (one path per line)

Writes one row per file: file, eid, status ('ok' or 'error'), error, duration_s, the ten
phenotypes (columns with units, e.g. 'LVEDV (mL)') and with --embeddings the mean-pooled ECG
embedding (emb_0 ...). A file that cannot be read gets its row with the reason and the others
still run. Exit status: 0 when every file succeeded, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ptacl predict",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        fromfile_prefix_chars="@",
    )
    parser.add_argument("--model", type=Path, required=True, help="bundle from `ptacl export`")
    parser.add_argument(
        "--ecg", type=Path, nargs="+", required=True, help="ECG files (XML, DICOM, WFDB, .npy/.npz)"
    )
    parser.add_argument("--out", type=Path, required=True, help="CSV to write")
    parser.add_argument("--embeddings", action="store_true", help="add the ECG embedding columns")
    parser.add_argument("--fs", type=float, help="sampling rate in Hz, for .npy/.npz arrays")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--batch-size", type=int, default=32, help="crops per forward pass")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ptacl.inference import BundleError, Predictor

    try:
        predictor = Predictor(args.model, device=args.device, batch_size=args.batch_size)
    except BundleError as e:
        print(f"ptacl predict: {e}", file=sys.stderr)
        return 1
    table = predictor.predict_files(
        args.ecg,
        fs=args.fs,
        embeddings=args.embeddings,
        progress=False if args.no_progress else None,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    failed = table[table["status"] != "ok"]
    for _, row in failed.iterrows():
        print(f"ptacl predict: {row['error']}", file=sys.stderr)
    print(f"{len(table) - len(failed)} of {len(table)} files predicted -> {args.out}")
    return 0 if failed.empty else 1


if __name__ == "__main__":
    sys.exit(main())
