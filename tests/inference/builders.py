"""Builders for the inference tests: synthetic ECGs, CardioSoft XML, a probe store, a tiny encoder.

A plain module (not a conftest) so the CLI tests can import it too: `from inference.builders
import ...` (pytest puts tests/ on sys.path for the root conftest).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ptacl.data.store import ECG_FS, LEADS, write_store
from ptacl.ecg import preprocess_ecg
from ptacl.models.vit import EcgEncoder, EcgEncoderConfig

#: Lead gains of a plausible resting ECG (mV of the R wave), in LEADS order.
_GAINS = np.array([0.6, 1.0, 0.4, -0.8, 0.3, 0.7, -0.6, 0.2, 0.6, 1.2, 1.1, 0.9])


def beats_ecg(heart_rate: float, amplitude: float, seconds: float = 10.0, fs: float = ECG_FS):
    """(12, S) mV: Gaussian P, QRS and T waves at `heart_rate`, scaled by `amplitude`."""
    t = np.arange(int(seconds * fs)) / fs
    rr = 60.0 / heart_rate
    beat = np.zeros_like(t)
    for r in np.arange(0.3, seconds, rr):
        beat += 0.12 * np.exp(-(((t - r + 0.16) / 0.025) ** 2))  # P
        beat += 1.00 * np.exp(-(((t - r) / 0.012) ** 2))  # QRS
        beat += 0.25 * np.exp(-(((t - r - 0.28) / 0.05) ** 2))  # T
    rng = np.random.default_rng(int(heart_rate * 100))
    noise = 0.01 * rng.standard_normal((len(LEADS), len(t)))
    return (amplitude * _GAINS[:, None] * beat[None, :] + noise).astype(np.float32)


def write_cardiosoft_xml(path: Path, signal_mv: np.ndarray, fs: float = ECG_FS) -> Path:
    """A minimal UK Biobank CardioSoft XML holding `signal_mv` as its rhythm strip (5 µV/LSB)."""
    counts = np.rint(signal_mv / 0.005).astype(int)
    waves = "\n".join(
        f'<WaveformData lead="{lead}">\n\t\t{",".join(map(str, row))}\n</WaveformData>'
        for lead, row in zip(LEADS, counts)
    )
    path.write_text(
        '<?xml version="1.0" encoding="ISO-8859-1"?>\n<CardiologyXML>\n'
        "<ObservationType>RestECG</ObservationType>\n<StripData>\n"
        f"<NumberOfLeads>12</NumberOfLeads>\n"
        f'<SampleRate units="Hz">{fs:g}</SampleRate>\n'
        f"<ChannelSampleCountTotal>{counts.shape[1]}</ChannelSampleCountTotal>\n"
        f'<Resolution units="uVperLsb">5</Resolution>\n{waves}\n</StripData>\n</CardiologyXML>\n',
        encoding="iso-8859-1",
    )
    return path


def cohort(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Heart rates, amplitudes and phenotypes (n, 10) in PHENOTYPES order, loosely tied together."""
    rng = np.random.default_rng(seed)
    hr = rng.uniform(50, 95, n)
    lvm = rng.normal(110, 20, n)
    amplitude = lvm / 110 * rng.uniform(0.9, 1.1, n)
    lvedv = rng.normal(150, 25, n)
    lvef = rng.normal(60, 5, n)
    lvesv = lvedv * (1 - lvef / 100)
    lvsv = lvedv - lvesv
    rvedv = lvedv * rng.uniform(1.0, 1.15, n)
    rvef = rng.normal(57, 5, n)
    rvesv = rvedv * (1 - rvef / 100)
    rvsv = rvedv - rvesv
    lvco = lvsv * hr / 1000
    phen = np.stack([lvedv, lvesv, lvsv, lvef, lvco, lvm, rvedv, rvesv, rvsv, rvef], axis=1)
    return hr, amplitude, phen.astype(np.float32)


def write_probe_store(out: Path) -> Path:
    """90 subjects (60 train, 15 val, 15 test); ECG only, two of them 6 s long."""
    n = 90
    hr, amplitude, phen = cohort(n)
    ecg = np.zeros((n, 12, 5000), np.float32)
    lengths = np.full(n, 5000)
    lengths[[3, 70]] = 3000
    for i in range(n):
        raw = beats_ecg(hr[i], amplitude[i], seconds=lengths[i] / ECG_FS)
        ecg[i, :, : lengths[i]] = preprocess_ecg(raw, ECG_FS)
    splits = ["train"] * 60 + ["val"] * 15 + ["test"] * 15
    phen[5, 3] = np.nan  # an unknown phenotype must be left out of that column's fit only
    return write_store(
        out,
        eids=[f"{1000000 + i}" for i in range(n)],
        splits=splits,
        ecg=ecg,
        cmr=np.zeros((n, 1, 2, 2), np.uint8),
        r_peaks=[np.zeros(0, np.int32)] * n,
        phenotypes=phen,
        has_ecg=[True] * n,
        has_cmr=[False] * n,
        qc=pd.DataFrame({"eid": [], "status": [], "modality": [], "file": [], "reason": []}),
        ecg_lengths=lengths,
    )


def tiny_encoder(seed: int = 0) -> EcgEncoder:
    torch.manual_seed(seed)
    return EcgEncoder(EcgEncoderConfig(width=16, depth=1, heads=2)).eval()


def export_tiny_bundle(out: Path, store: Path, *, aligned: bool = False) -> Path:
    """Export `tiny_encoder()` with an OLS probe on `store`; `aligned` adds a projection head."""
    from ptacl.inference.export import export_with_probe

    projection = spec = None
    if aligned:
        from ptacl.training.align import HeadConfig, projection_head

        torch.manual_seed(1)
        projection = projection_head(16, HeadConfig(hidden=8, dim=4))
        spec = {"kind": "mlp", "kwargs": {"width": 16, "hidden": 8, "dim": 4}}
    return export_with_probe(
        out,
        encoder=tiny_encoder(),
        store=store,
        source={"run": "tests: random tiny encoder"},
        projection=projection,
        projection_spec=spec,
    )


def shared(tmp_path_factory, name: str, build) -> Path:
    """`build(path)` once per test session, whichever test directory asks first.

    Session fixtures of different test folders are separate; this cache under the session's
    base temp folder lets the CLI tests reuse the store and bundles the inference tests made.
    """
    path = tmp_path_factory.getbasetemp() / "ptacl-inference" / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        build(path)
    return path


def probe_store_for(tmp_path_factory) -> Path:
    return shared(tmp_path_factory, "store", write_probe_store)


def bundle_for(tmp_path_factory, *, aligned: bool = False) -> Path:
    store = probe_store_for(tmp_path_factory)
    name = "aligned-bundle" if aligned else "bundle"
    return shared(tmp_path_factory, name, lambda p: export_tiny_bundle(p, store, aligned=aligned))
