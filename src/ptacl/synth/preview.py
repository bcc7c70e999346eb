"""A PNG sheet of a few generated subjects: 12-lead ECG, and ED/ES mid-ventricular frames with
segmentation contours. Reads the written files back, so it shows what users will get."""

from __future__ import annotations

from pathlib import Path

import defusedxml.ElementTree as ET
import nibabel as nib
import numpy as np
import pandas as pd

from ptacl.synth.ecg import LEADS

# Contours drawn: LV endocardium, LV epicardium, RV endocardium.
_CONTOURS = (((1,), "#ff4040"), ((1, 2), "#40ff40"), ((3,), "#40a0ff"))


def read_strip(path: Path) -> tuple[np.ndarray, float]:
    """The StripData rhythm strip of a CardioSoft XML as (12, S) mV and its sampling rate."""
    strip = ET.parse(path).getroot().find("StripData")
    fs = float(strip.findtext("SampleRate"))
    uv = float(strip.findtext("Resolution"))
    by_lead = {
        w.get("lead"): np.array(
            [int(v) for v in w.text.replace("\n", "").replace("\t", "").split(",")]
        )
        for w in strip.findall("WaveformData")
    }
    return np.stack([by_lead[name] for name in LEADS]) * uv / 1000.0, fs


def write_preview(cohort: str | Path, path: str | Path | None = None, subjects: int = 3) -> Path:
    """Draw the first `subjects` subjects of `cohort` into `path` (default cohort/preview.png)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cohort = Path(cohort)
    path = Path(path) if path else cohort / "preview.png"
    pheno = pd.read_csv(cohort / "phenotypes.csv", dtype={"eid": str}).set_index("eid")
    eids = list(pheno.index[:subjects])
    fig = plt.figure(figsize=(18, 5.2 * len(eids)))
    grid = fig.add_gridspec(len(eids), 3, width_ratios=[3.2, 1, 1], hspace=0.25, wspace=0.08)
    for row, eid in enumerate(eids):
        signal, fs = read_strip(cohort / "ecg" / f"{eid}_20205_2_0.xml")
        ax = fig.add_subplot(grid[row, 0])
        _draw_ecg(ax, signal, fs)
        p = pheno.loc[eid]
        ax.set_title(
            f"eid {eid}   LVEDV {p['LVEDV (mL)']:.0f} mL, LVEF {p['LVEF (%)']:.0f} %, "
            f"LVM {p['LVM (g)']:.0f} g, RVEDV {p['RVEDV (mL)']:.0f} mL",
            loc="left",
            fontsize=10,
        )
        image = np.asanyarray(nib.load(cohort / "cmr" / eid / "sa.nii.gz").dataobj)
        seg = np.asanyarray(nib.load(cohort / "cmr" / eid / "seg_sa.nii.gz").dataobj)
        lv = (seg == 1).sum(axis=(0, 1))  # (Z, T)
        es = int(np.argmin(lv.sum(axis=0)))
        # Mid-ventricular: the middle of the slices that hold LV pool in every frame.
        full = np.flatnonzero((lv > 0).all(axis=1))
        mid = int(full[len(full) // 2]) if full.size else int(np.argmax(lv[:, 0]))
        for col, (frame, name) in enumerate(((0, "ED"), (es, f"ES (frame {es})"))):
            ax = fig.add_subplot(grid[row, 1 + col])
            ax.imshow(image[:, :, mid, frame].T, cmap="gray")
            for labels, colour in _CONTOURS:
                mask = np.isin(seg[:, :, mid, frame].T, labels).astype(float)
                if mask.any():
                    ax.contour(mask, levels=[0.5], colors=colour, linewidths=0.8)
            ax.set_title(f"{name}, slice {mid}", fontsize=10)
            ax.axis("off")
    fig.savefig(path, dpi=70, bbox_inches="tight")
    plt.close(fig)
    return path


def _draw_ecg(ax, signal: np.ndarray, fs: float) -> None:
    """Leads stacked on ECG paper: 0.2 s / 0.5 mV major grid, first 5 s."""
    n = int(5 * fs)
    t = np.arange(n) / fs
    gap = 2.5
    for i, name in enumerate(LEADS):
        offset = -i * gap
        trace = signal[i, :n] - np.median(signal[i, :n])
        ax.plot(t, trace + offset, color="black", lw=0.7)
        ax.text(-0.05, offset, name, ha="right", va="center", fontsize=8)
    ax.set_xticks(np.arange(0, 5.01, 0.2), minor=False)
    ax.set_yticks(np.arange(-gap * 12, gap, 0.5))
    ax.grid(True, color="#f4a6a6", lw=0.5)
    ax.set_xlim(0, 5)
    ax.set_ylim(-gap * 11.6, gap * 0.7)
    ax.set_xticklabels(
        [f"{v:.0f}" if abs(v - round(v)) < 1e-6 else "" for v in np.arange(0, 5.01, 0.2)]
    )
    ax.set_yticklabels([])
    ax.set_xlabel("s (grid: 0.2 s × 0.5 mV)")
    ax.tick_params(length=0)
    # the amplitude scale, as on ECG paper: a 1 mV bar in the margin above lead I
    top = gap * 0.7
    ax.plot([4.93, 4.93], [top - 1.1, top - 0.1], color="tab:blue", lw=2, solid_capstyle="butt")
    ax.text(4.9, top - 0.6, "1 mV", ha="right", va="center", fontsize=8, color="tab:blue")
