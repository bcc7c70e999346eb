"""Measure the preprocessing against the synthetic cohort's ground truth, and on a real ECG.

    .venv/bin/ptacl synth --out /tmp/cohort --subjects 200 --seed 0
    .venv/bin/python benchmarks/measure_preprocess.py /tmp/cohort [--plots /tmp/plots]

Reads the cohort's files with the project's readers (what `ptacl prepare` does) and reports:

- R peaks: recall and precision of `detect_r_peaks` within 10 ms of `truth.csv`'s R peaks
  (one-to-one matching), on the raw strip at its own rate (what the store keeps) and on the
  preprocessed 500-Hz signal; neurokit2 on lead II beside it for comparison.
- CMR crop without seg: the share of subjects whose 84 x 84 crop, centred by
  `find_heart_centre(frames)` from the image alone, holds every LV (label 1) and RV (label 3)
  voxel of the chosen slice in every frame; the same with the seg-based centre and with the
  plain image centre, for comparison; the distance between motion and seg centres. The
  synthetic heart sits within 8 px of the centre of a 104-px image, where even the image centre
  works, so the same is measured again with the field of view widened by 48 px of replicated
  border on one side (heart 24 px off centre).
- The pydicom Mortara recording: beats found (10 by eye), with a plot when `--plots` is given.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from ptacl.cmr import crop_box, find_heart_centre
from ptacl.ecg import detect_r_peaks, preprocess_ecg
from ptacl.io import read_cmr, read_ecg
from ptacl.schema import CMR_SIZE, ECG_FS

TOLERANCE_S = 0.010


def match(found: np.ndarray, truth: np.ndarray, tol: float) -> tuple[int, np.ndarray]:
    """Greedy one-to-one matching of sorted event times; returns (hits, signed errors)."""
    used = np.zeros(len(found), dtype=bool)
    errors = []
    for t in truth:
        d = np.abs(found - t).astype(float)
        d[used] = np.inf
        if len(d) and d.min() <= tol:
            k = int(np.argmin(d))
            used[k] = True
            errors.append(found[k] - t)
    return len(errors), np.asarray(errors, dtype=float)


def parse_peaks(value) -> np.ndarray:
    text = str(value).replace(";", " ").replace(",", " ").strip("[] ")
    return np.array([int(float(v)) for v in text.split()], dtype=np.int64)


def load_truth(cohort: Path) -> dict[str, np.ndarray]:
    """eid -> true R-peak sample indices (at the strip's rate) from truth.csv."""
    truth = pd.read_csv(cohort / "truth.csv", dtype={"eid": str})
    column = next(c for c in truth.columns if "r_peak" in c.lower())
    return {row.eid: parse_peaks(getattr(row, column)) for row in truth.itertuples()}


def measure_ecg(cohort: Path, limit: int | None) -> dict:
    truth = load_truth(cohort)
    files = sorted((cohort / "ecg").glob("*_20205_*.xml"))[:limit]
    counts = {
        k: [0, 0, 0] for k in ("raw", "preprocessed", "neurokit_lead_ii")
    }  # hits, true, found
    errors: dict[str, list] = {k: [] for k in counts}
    misses = []
    for path in files:
        eid = path.name.split("_")[0]
        record = read_ecg(path)
        true_s = truth[eid] / ECG_FS  # truth indices are at the strip's 500 Hz
        found = {
            "raw": detect_r_peaks(record.signal, record.fs) / record.fs,
            "preprocessed": detect_r_peaks(preprocess_ecg(record.signal, record.fs), ECG_FS)
            / ECG_FS,
            "neurokit_lead_ii": detect_r_peaks(record.signal, record.fs, method="neurokit")
            / record.fs,
        }
        for key, f in found.items():
            hits, err = match(f, true_s, TOLERANCE_S)
            counts[key][0] += hits
            counts[key][1] += len(true_s)
            counts[key][2] += len(f)
            errors[key].extend(err.tolist())
            if key == "raw" and (hits < len(true_s) or hits < len(f)):
                misses.append(
                    {
                        "eid": eid,
                        "truth": truth[eid].tolist(),
                        "found": (f * record.fs).round().astype(int).tolist(),
                    }
                )
    out = {"subjects": len(files), "tolerance_ms": TOLERANCE_S * 1000}
    for key, (hits, n_true, n_found) in counts.items():
        err_ms = np.abs(errors[key]) * 1000
        out[key] = {
            "recall": hits / max(n_true, 1),
            "precision": hits / max(n_found, 1),
            "true_peaks": n_true,
            "found_peaks": n_found,
            "matched_abs_error_ms_mean": float(err_ms.mean()) if len(err_ms) else None,
            "matched_abs_error_ms_max": float(err_ms.max()) if len(err_ms) else None,
        }
    out["raw_mismatches"] = misses[:20]
    return out


def off_centre(frames: np.ndarray, seg: np.ndarray, pad: int, side: int):
    """Widen the field of view by `pad` pixels of replicated border on one side (0-3), so the
    heart sits pad / 2 pixels off the image centre, as in a real scan's larger field of view."""
    widths = [((0, 0), (pad, 0), (0, 0)), ((0, 0), (0, pad), (0, 0)),
              ((0, 0), (0, 0), (pad, 0)), ((0, 0), (0, 0), (0, pad))][side]  # fmt: skip
    return np.pad(frames, widths, mode="edge"), np.pad(seg, widths)


def measure_cmr(cohort: Path, limit: int | None, shifted: bool = False) -> dict:
    """Crop containment (see module docstring); `shifted`: on `off_centre` images (48 px)."""
    folders = sorted(p for p in (cohort / "cmr").iterdir() if (p / "sa.nii.gz").is_file())[:limit]
    held = {"motion": 0, "seg": 0, "image_centre": 0}
    distance, margins, failures = [], [], []
    for i, folder in enumerate(folders):
        record = read_cmr(folder / "sa.nii.gz")  # the seg beside it picks the slice
        seg = record.seg
        if shifted:
            frames, seg = off_centre(record.frames, seg, 48, i % 4)
            record = dataclasses.replace(record, frames=frames, seg=seg)
        heart = ((seg == 1) | (seg == 3)).any(axis=0)  # every LV and RV voxel of every frame
        rows, cols = np.nonzero(heart)
        _, h, w = record.frames.shape
        centres = {
            "motion": find_heart_centre(record.frames),
            "seg": find_heart_centre(record.frames, seg),
            "image_centre": ((h - 1) / 2, (w - 1) / 2),
        }
        for key, centre in centres.items():
            r0, r1, c0, c1 = crop_box(centre, CMR_SIZE)
            margin = min(rows.min() - r0, r1 - 1 - rows.max(), cols.min() - c0, c1 - 1 - cols.max())
            held[key] += bool(margin >= 0)
            if key == "motion":
                margins.append(int(margin))
                if margin < 0:
                    failures.append(folder.name)
        distance.append(float(np.hypot(*np.subtract(centres["motion"], centres["seg"]))))
    n = len(folders)
    return {
        "subjects": n,
        "crop": CMR_SIZE,
        "share_crop_holds_lv_rv": {k: v / max(n, 1) for k, v in held.items()},
        "motion_vs_seg_centre_px": {
            "median": float(np.median(distance)),
            "p95": float(np.percentile(distance, 95)),
            "max": float(np.max(distance)),
        },
        "motion_crop_margin_px": {"min": min(margins), "median": float(np.median(margins))},
        "motion_failures": failures,
    }


def measure_pydicom(plots: Path | None) -> dict:
    from pydicom import examples

    record = read_ecg(examples.get_path("waveform"))
    raw = detect_r_peaks(record.signal, record.fs)
    pre_signal = preprocess_ecg(record.signal, record.fs)
    pre = detect_r_peaks(pre_signal, ECG_FS)
    out = {
        "beats_raw": len(raw),
        "beats_preprocessed": len(pre),
        "rr_s": (np.diff(raw) / record.fs).round(3).tolist(),
    }
    if plots is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        plots.mkdir(parents=True, exist_ok=True)
        fig, axes = plt.subplots(4, 1, figsize=(16, 10), sharex=True)
        t = np.arange(record.signal.shape[1]) / record.fs
        for ax, k in zip(axes[:3], (0, 1, 7)):
            ax.plot(t, record.signal[k], lw=0.7)
            ax.plot(raw / record.fs, record.signal[k, raw], "rx")
            ax.set_ylabel(f"{record.leads[k]} (mV)")
        ax = axes[3]
        ax.plot(np.arange(pre_signal.shape[1]) / ECG_FS, pre_signal[1], lw=0.7)
        ax.plot(pre / ECG_FS, pre_signal[1, pre], "rx")
        ax.set_ylabel("II preprocessed (z)")
        ax.set_xlabel("s")
        fig.suptitle(
            "pydicom waveform_ecg.dcm: R peaks (x) detected on the raw and preprocessed signal"
        )
        fig.tight_layout()
        fig.savefig(plots / "pydicom_r_peaks.png", dpi=80)
        out["plot"] = str(plots / "pydicom_r_peaks.png")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cohort", type=Path, help="output folder of `ptacl synth`")
    parser.add_argument("--limit", type=int, default=None, help="first N subjects only")
    parser.add_argument("--plots", type=Path, default=None, help="folder for the pydicom plot")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    results = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}",
        "cohort": str(args.cohort),
        "ecg": measure_ecg(args.cohort, args.limit),
        "cmr": measure_cmr(args.cohort, args.limit),
        "cmr_heart_off_centre": measure_cmr(args.cohort, args.limit, shifted=True),
        "pydicom": measure_pydicom(args.plots),
    }
    results["seconds"] = round(time.perf_counter() - start, 1)
    text = json.dumps(results, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
