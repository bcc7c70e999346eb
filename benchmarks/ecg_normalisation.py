"""How much phenotype information survives each ECG normalisation? Ridge regression, measured.

    .venv/bin/python benchmarks/ecg_normalisation.py --cohort /tmp/cohort --subjects 1000

The paper says only "z-score normalisation". Per lead (each lead to unit variance over its 10 s)
throws away every lead's voltage, which is what the ECG knows of ventricular mass and size
(Sokolow-Lyon and Cornell voltage criteria); per recording (one mean and one sd over all 12 leads)
keeps the leads' relative sizes and loses only the subject's overall gain. This script reads the
rhythm strips as `ptacl prepare` does (500 Hz, the DWT filter), applies each normalisation, averages
the beats around our detector's R peaks (-250..+450 ms, block-averaged to 12 x 35 values) and
reports the out-of-fold R² of a 5-fold RidgeCV per phenotype. Features are identical across
columns except for the normalisation, so the differences are what each normalisation removes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import RidgeCV
from sklearn.metrics import r2_score
from sklearn.model_selection import KFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ptacl.ecg import resample_ecg, wavelet_filter
from ptacl.ecg.peaks import detect_r_peaks
from ptacl.io import read_ecg
from ptacl.phenotypes import PHENOTYPES

FS = 500
BEFORE, AFTER = 125, 225  # samples around the R peak (-250 ms .. +450 ms)


def normalisations(x: np.ndarray) -> dict[str, np.ndarray]:
    """(12, S) filtered mV -> the same signal under each normalisation."""
    centred = x - x.mean(axis=-1, keepdims=True)
    return {
        "mV (none)": centred,
        "z per recording": centred / centred.std(),
        "z per lead": centred / centred.std(axis=-1, keepdims=True),
    }


def mean_beat(x: np.ndarray, peaks: np.ndarray) -> np.ndarray:
    """(12, S) -> (12 * 35,) average beat around the R peaks, block-averaged over 10 samples."""
    peaks = peaks[(peaks >= BEFORE) & (peaks + AFTER <= x.shape[-1])]
    beats = np.stack([x[:, p - BEFORE : p + AFTER] for p in peaks])  # (n, 12, 350)
    return beats.mean(axis=0).reshape(12, 35, 10).mean(axis=2).ravel()


def cv_r2(x: np.ndarray, y: np.ndarray) -> float:
    ok = np.isfinite(y)
    model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 5, 22)))
    pred = cross_val_predict(model, x[ok], y[ok], cv=KFold(5, shuffle=True, random_state=0))
    return float(r2_score(y[ok], pred))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohort", type=Path, required=True, help="a `ptacl synth` folder")
    parser.add_argument("--subjects", type=int, default=1000)
    args = parser.parse_args(argv)
    pheno = pd.read_csv(args.cohort / "phenotypes.csv", dtype={"eid": str}).set_index("eid")
    pheno = pheno.iloc[: args.subjects]
    features: dict[str, list[np.ndarray]] = {}
    for eid in pheno.index:
        record = read_ecg(args.cohort / "ecg" / f"{eid}_20205_2_0.xml")
        x = wavelet_filter(resample_ecg(record.signal, record.fs))
        peaks = detect_r_peaks(x, FS)
        for name, signal in normalisations(x).items():
            features.setdefault(name, []).append(mean_beat(signal, peaks))
    sets = {name: np.array(rows) for name, rows in features.items()}
    print(f"cohort {args.cohort} ({len(pheno)} subjects); out-of-fold R², 5-fold RidgeCV")
    print(f"| phenotype | {' | '.join(sets)} |")
    print(f"|---|{'---|' * len(sets)}")
    for column in PHENOTYPES:
        y = pheno[column].to_numpy(dtype=float)
        print(f"| {column} | {' | '.join(f'{cv_r2(x, y):.3f}' for x in sets.values())} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
