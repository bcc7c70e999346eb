"""Predict the 10 CMR phenotypes from ECG files with an exported bundle.

    ptacl predict --model BUNDLE --ecg a.xml b.dcm rec.hea --out predictions.csv [--embeddings]
    ptacl predict --model BUNDLE --ecg @files.txt --out predictions.csv   (one path per line)

Writes one row per file: file, eid, status, duration_s, ood_score, the ten phenotypes
(columns with units, e.g. 'LVEDV (mL)') and with --embeddings the mean-pooled ECG embedding
(emb_0 ...). status is 'ok', 'warning: <reasons>' (a value beyond the training range, an ECG
unlike the training ECGs) or 'error: <reason>' (a file that cannot be read or is refused, a NaN
or physiologically impossible value); the other files still run. The CSV is written whole or
not at all (a full disk leaves the previous one, if any, untouched).

Exit status: 0 when every row is 'ok', 1 when the CSV was written but a row is not 'ok', 2 when
the bundle was refused or the CSV could not be written (nothing written).
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
        "--ecg",
        type=Path,
        nargs="+",
        required=True,
        help="ECG files (XML, DICOM, WFDB, .npy/.npz), folders of them or quoted glob patterns",
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
        return 2
    from ptacl.atomic import OutputBusy, atomic_file

    table = predictor.predict_files(
        args.ecg,
        fs=args.fs,
        embeddings=args.embeddings,
        progress=False if args.no_progress else None,
    )
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(args.out) as tmp:
            table.to_csv(tmp, index=False)
    except (OSError, OutputBusy) as e:
        print(f"ptacl predict: writing {args.out} failed: {e}", file=sys.stderr)
        return 2
    for _, row in table[table["status"] != "ok"].iterrows():
        # an unreadable file's message names the file already
        named = row["status"] if row["file"] in row["status"] else f"{row['file']}: {row['status']}"
        print(f"ptacl predict: {named}", file=sys.stderr)
    ok = int((table["status"] == "ok").sum())
    errors = int(table["status"].str.startswith("error").sum())
    print(
        f"{ok} of {len(table)} files ok, {len(table) - ok - errors} with warnings, "
        f"{errors} with errors -> {args.out}"
    )
    return 0 if ok == len(table) else 1


if __name__ == "__main__":
    sys.exit(main())
