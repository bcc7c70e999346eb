"""Builders for the inference tests: synthetic ECGs, CardioSoft XML, a probe store, a tiny encoder.

A plain module (not a conftest) so the CLI tests can import it too: `from inference.builders
import ...` (pytest puts tests/ on sys.path for the root conftest).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ptacl.data.store_write import write_store
from ptacl.ecg import preprocess_ecg
from ptacl.models.vit import EcgEncoder, EcgEncoderConfig
from ptacl.schema import ECG_FS, LEADS

#: Lead gains of a plausible resting ECG (mV of the R wave), in LEADS order; the limb leads
#: follow Einthoven's and Goldberger's laws from I and II, as a device computes them.
_GAINS = np.array([0.6, 1.0, 0.4, -0.8, 0.1, 0.7, -0.6, 0.2, 0.6, 1.2, 1.1, 0.9])


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


def write_cardiosoft_xml(
    path: Path, signal_mv: np.ndarray, fs: float = ECG_FS, pid: str | None = None
) -> Path:
    """A minimal UK Biobank CardioSoft XML holding `signal_mv` as its rhythm strip (5 µV/LSB),
    and `PatientInfo/PID` when `pid` is given."""
    counts = np.rint(signal_mv / 0.005).astype(int)
    waves = "\n".join(
        f'<WaveformData lead="{lead}">\n\t\t{",".join(map(str, row))}\n</WaveformData>'
        for lead, row in zip(LEADS, counts)
    )
    path.write_text(
        '<?xml version="1.0" encoding="ISO-8859-1"?>\n<CardiologyXML>\n'
        "<ObservationType>RestECG</ObservationType>\n"
        + ("" if pid is None else f"<PatientInfo><PID>{pid}</PID></PatientInfo>\n")
        + "<StripData>\n"
        f"<NumberOfLeads>12</NumberOfLeads>\n"
        f'<SampleRate units="Hz">{fs:g}</SampleRate>\n'
        f"<ChannelSampleCountTotal>{counts.shape[1]}</ChannelSampleCountTotal>\n"
        f'<Resolution units="uVperLsb">5</Resolution>\n{waves}\n</StripData>\n</CardiologyXML>\n',
        encoding="iso-8859-1",
    )
    return path


def synth_subject(seed: int, index: int) -> tuple[np.ndarray, np.ndarray]:
    """One `ptacl synth` subject without its CMR: its strip (12, 5000) in mV and the 10
    phenotypes (PHENOTYPES order) that follow from its latents."""
    from ptacl.synth.cohort import subject_rngs
    from ptacl.synth.ecg import synth_ecg
    from ptacl.synth.latents import sample_latents

    rng_latents, _, rng_ecg = subject_rngs(seed, index)
    lat = sample_latents(rng_latents)
    lvsv, rvsv = lat.lvedv_ml - lat.lvesv_ml, lat.rvedv_ml - lat.rvesv_ml
    phenotypes = [
        lat.lvedv_ml, lat.lvesv_ml, lvsv, lat.lvef_pct, lvsv * lat.hr_cmr_bpm / 1000, lat.lvm_g,
        lat.rvedv_ml, lat.rvesv_ml, rvsv, lat.rvef_pct,
    ]  # fmt: skip
    return synth_ecg(lat, rng_ecg).signal_mv, np.array(phenotypes, np.float32)


def write_probe_store(out: Path, n: int = 90, seed: int = 3) -> Path:
    """`n` synthetic subjects (2/3 train, 1/6 val, 1/6 test), ECG only, as `ptacl prepare`
    would store them; two recordings cut to 6 s, one phenotype unknown."""
    ecg = np.zeros((n, 12, 5000), np.float32)
    phen = np.zeros((n, 10), np.float32)
    lengths = np.full(n, 5000)
    lengths[[3, n - 20]] = 3000
    for i in range(n):
        raw, phen[i] = synth_subject(seed, i)
        ecg[i, :, : lengths[i]] = preprocess_ecg(raw[:, : lengths[i]], ECG_FS)
    n_train, n_val = 2 * n // 3, n // 6
    splits = ["train"] * n_train + ["val"] * n_val + ["test"] * (n - n_train - n_val)
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
    from ptacl.export import export_with_probe

    projection = spec = None
    if aligned:
        from ptacl.models.heads import HeadConfig, projection_head

        torch.manual_seed(1)
        projection = projection_head(16, HeadConfig(hidden=8, dim=4)).eval()
        spec = {"kind": "mlp", "kwargs": {"width": 16, "hidden": 8, "dim": 4, "norm": "batch"}}
    return export_with_probe(
        out,
        encoder=tiny_encoder(),
        store=store,
        source={"run": "tests: random tiny encoder"},
        projection=projection,
        projection_spec=spec,
    )


def export_finetuned_bundle(out: Path) -> Path:
    """Export `tiny_encoder()` with a fine-tune run's attention-pooling head (random weights,
    target scaling of plausible phenotype units), as `ptacl export` bundles a fine-tune run."""
    from ptacl.export import export_bundle
    from ptacl.models.heads import AttentionPoolPhenotypes
    from ptacl.phenotypes import PHENOTYPES

    torch.manual_seed(2)
    head = AttentionPoolPhenotypes(16, len(PHENOTYPES), heads=2).eval()
    head.target_mean.copy_(torch.tensor([150.0, 60, 90, 60, 5, 110, 160, 70, 90, 57]))
    head.target_sd.copy_(torch.tensor([25.0, 10, 15, 5, 1, 20, 25, 10, 15, 5]))
    spec = {
        "kind": "attention_pool",
        "kwargs": {"width": 16, "outputs": len(PHENOTYPES), "heads": 2, "dropout": 0.0},
        "input": "tokens",
    }
    return export_bundle(
        out,
        encoder=tiny_encoder(),
        head=head,
        head_spec=spec,
        source={"run": "tests: random tiny fine-tuned encoder", "stage": "finetune"},
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


#: Endpoint overrides that give the 90-subject probe store positives and negatives in every
#: split (its LVEF sits near 60 %, its LVM near 110 g): LVEF < 60 % and LVM > 110 g are
#: fitted, LVEF <= 40 % and LV dilation stay too rare and are skipped.
ENDPOINT_OVERRIDES = ("min_positives=3", "lvsd.threshold=60", "lvh.threshold=110")


def export_endpoint_bundle(out: Path, store: Path) -> Path:
    """`export_tiny_bundle` with endpoint probabilities (`ENDPOINT_OVERRIDES`; 50 bootstrap
    replicates for the test CIs, enough to have them)."""
    from ptacl.eval.endpoints import load_endpoints
    from ptacl.export import export_with_probe

    return export_with_probe(
        out,
        encoder=tiny_encoder(),
        store=store,
        source={"run": "tests: random tiny encoder"},
        endpoints=load_endpoints(None, ENDPOINT_OVERRIDES),
        n_boot=50,
    )


def endpoint_bundle_for(tmp_path_factory) -> Path:
    store = probe_store_for(tmp_path_factory)
    return shared(tmp_path_factory, "endpoint-bundle", lambda p: export_endpoint_bundle(p, store))


def finetuned_bundle_for(tmp_path_factory) -> Path:
    return shared(tmp_path_factory, "finetuned-bundle", export_finetuned_bundle)


def synth_xmls(folder: Path, n: int, seed: int = 7) -> list[Path]:
    """`n` CardioSoft XMLs written by `ptacl synth`'s own generator and writer (no CMR)."""
    from ptacl.synth.cardiosoft_xml import visit_time
    from ptacl.synth.cardiosoft_xml import write_cardiosoft_xml as synth_write
    from ptacl.synth.cohort import make_eids, subject_rngs
    from ptacl.synth.ecg import synth_ecg
    from ptacl.synth.latents import sample_latents

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, eid in enumerate(make_eids(n, seed)):
        rng_latents, _, rng_ecg = subject_rngs(seed, index)
        latents = sample_latents(rng_latents)
        ecg = synth_ecg(latents, rng_ecg)
        path = folder / f"{eid}_20205_2_0.xml"
        synth_write(path, eid, ecg, latents, visit_time(rng_ecg))
        paths.append(path)
    return paths
