"""Predict the 10 CMR phenotypes from ECG files with an exported bundle.

    ptacl predict --model BUNDLE --ecg a.xml b.dcm rec.hea --out predictions.csv [--embeddings]
    ptacl predict --model BUNDLE --ecg @files.txt --out predictions.csv   (one path per line)

Writes one row per file: file, eid, status, duration_s, ood_score, the ten phenotypes
(columns with units, e.g. 'LVEDV (mL)'), then per phenotype the bounds of its prediction
interval ('LVEDV (mL) lower', 'LVEDV (mL) upper'; the bundle's nominal coverage, 90 % unless
exported otherwise, measured in its model card; a bundle exported before intervals has none,
said on stderr), then per clinical endpoint the bundle fitted at export its calibrated
probability from the ECG alone ('P(lvsd)': LVEF < 50 %, 'P(lvh)', ...; definitions and
measured calibration in the model card; none for a bundle exported before endpoints) and with
--embeddings the mean-pooled ECG embedding
(emb_0 ...). status is 'ok', 'warning: <reasons>' (a value beyond the training range, an ECG
unlike the training ECGs) or 'error: <reason>' (a file that cannot be read or is refused, a NaN
or physiologically impossible value); the other files still run. The CSV is written whole or
not at all (a full disk leaves the previous one, if any, untouched).

Values are written to the precision a unit warrants (`DECIMALS`: 0.1 mL, g and %, 0.01 L/min;
the model's error is far larger), embeddings as float32.

Exit status: 0 when every row was written without error (rows with warnings included: their
values are there, the warning in `status` and on stderr), 1 when the CSV was written but a row
is an error, 2 when the bundle was refused or the CSV could not be written (nothing written).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


#: Decimals per unit in the CSV; other float columns (ood_score, duration_s) get `OTHER`,
#: endpoint probabilities ('P(lvsd)') `PROBABILITY` (0.1 percentage points).
DECIMALS = {"mL": 1, "g": 1, "%": 1, "L/min": 2}
OTHER = 2
PROBABILITY = 3


def for_csv(table: pd.DataFrame) -> pd.DataFrame:
    """`table` rounded for the CSV: phenotypes by `DECIMALS`, embeddings as float32 (what the
    model computes in), the rest to `OTHER` decimals; not 16 digits of float64 noise."""
    import pandas as pd

    from ptacl.phenotypes import split_name

    table = table.copy()
    for column in table.columns:
        if not pd.api.types.is_float_dtype(table[column]):
            continue
        if column.startswith("emb_"):
            table[column] = table[column].astype("float32")
        elif column.startswith("P("):
            table[column] = table[column].round(PROBABILITY)
        else:
            phenotype = column.removesuffix(" lower").removesuffix(" upper")  # bounds: its unit
            table[column] = table[column].round(DECIMALS.get(split_name(phenotype)[1], OTHER))
    return table


def build_parser() -> argparse.ArgumentParser:
    from ptacl.cli.common import at_least_one

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
        help="ECG files (CardioSoft or MUSE XML, DICOM, WFDB, .npy/.npz; an HDF5 file gives a "
        "row per record, FILE[k] one record), folders of them or quoted glob patterns",
    )
    parser.add_argument("--out", type=Path, required=True, help="CSV to write")
    parser.add_argument("--embeddings", action="store_true", help="add the ECG embedding columns")
    parser.add_argument("--fs", type=float, help="sampling rate in Hz, for .npy/.npz arrays")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument(
        "--batch-size", type=at_least_one, default=32, help="crops per forward pass"
    )
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

    if predictor.interval_level is None:
        print(
            f"ptacl predict: note: {args.model} has no prediction intervals (exported before "
            "ptacl made them, or without a store): no lower/upper columns; export it again "
            "to get them",
            file=sys.stderr,
        )

    table = predictor.predict_files(
        args.ecg,
        fs=args.fs,
        embeddings=args.embeddings,
        progress=False if args.no_progress else None,
    )
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(args.out) as tmp:
            for_csv(table).to_csv(tmp, index=False)
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
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
