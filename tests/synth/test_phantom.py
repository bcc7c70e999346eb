"""The phantom: phenotypes recomputed from the written segmentation agree with the table;
the cohort's distributions match UK Biobank's; the volume curve is physiological."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ptacl.phenotypes import PHENOTYPES
from ptacl.synth.cmr import render_cine
from ptacl.synth.cohort import subject_latents, subject_rngs
from ptacl.synth.geometry import build_geometry, volume_curve
from ptacl.synth.latents import sample_latents


def _from_seg(seg: np.ndarray, zooms) -> dict[str, float]:
    """ukbb_cardiac's rules on a (X, Y, Z, T) label volume."""
    ml = float(np.prod(zooms[:3])) / 1000.0
    lv = (seg == 1).sum(axis=(0, 1, 2)) * ml
    rv = (seg == 3).sum(axis=(0, 1, 2)) * ml
    es = int(np.argmin(lv))
    hr = 60.0 / (seg.shape[3] * float(zooms[3]))
    lvsv, rvsv = lv[0] - lv[es], rv[0] - rv[es]
    return dict(
        zip(
            PHENOTYPES,
            (lv[0], lv[es], lvsv, 100 * lvsv / lv[0], lvsv * hr / 1000,
             (seg[..., 0] == 2).sum() * ml * 1.05, rv[0], rv[es], rvsv, 100 * rvsv / rv[0]),
            strict=True,
        )
    )  # fmt: skip


def test_phenotypes_recomputed_from_written_seg_agree(cohort: Path):
    table = pd.read_csv(cohort / "phenotypes.csv", dtype={"eid": str}).set_index("eid")
    for eid, row in table.iterrows():
        seg = nib.load(cohort / "cmr" / eid / "seg_sa.nii.gz")
        got = _from_seg(np.asanyarray(seg.dataobj), seg.header.get_zooms())
        for name in PHENOTYPES:
            assert got[name] == pytest.approx(row[name], rel=0.03), f"{eid} {name}"


@pytest.mark.parametrize("index", [*range(6), 287])  # 287: LVEF 21 %, LVEDV 226 mL (dilated)
def test_rasterised_seg_agrees_with_geometry_in_memory(index: int):
    rng_lat, rng_cmr, _ = subject_rngs(123, index)
    geo = build_geometry(sample_latents(rng_lat), rng_cmr)
    cine = render_cine(geo, rng_cmr)
    seg = cine.seg.transpose(3, 2, 1, 0)  # (F, Z, H, W) -> (X, Y, Z, T)
    got = _from_seg(seg, (1.8, 1.8, 10.0, geo.frame_interval_s))
    for name, value in geo.phenotypes().items():
        assert got[name] == pytest.approx(value, rel=0.03), name


@pytest.fixture(scope="module")
def phantoms() -> pd.DataFrame:
    """300 subjects' phenotypes measured on the phantom (no rendering), and their CMR rate."""
    rows = []
    for i in range(300):
        rng_lat, rng_cmr, _ = subject_rngs(2024, i)
        lat = sample_latents(rng_lat)
        rows.append({**build_geometry(lat, rng_cmr).phenotypes(), "HR": lat.hr_cmr_bpm})
    return pd.DataFrame(rows)


def test_distributions_match_uk_biobank(phantoms: pd.DataFrame):
    df = phantoms
    targets = {  # column: (mean, sd) from the UK Biobank imaging cohort
        "LVEDV (mL)": (145, 33), "LVESV (mL)": (60, 18), "LVEF (%)": (59, 6),
        "LVM (g)": (85, 22), "HR": (65, 10), "RVEDV (mL)": (155, 37), "RVEF (%)": (56, 6),
    }  # fmt: skip
    for name, (mean, sd) in targets.items():
        assert df[name].mean() == pytest.approx(mean, rel=0.06), name
        assert df[name].std() == pytest.approx(sd, rel=0.3), name
    np.testing.assert_allclose(df["LVSV (mL)"], df["LVEDV (mL)"] - df["LVESV (mL)"])
    np.testing.assert_allclose(df["LVEF (%)"], 100 * df["LVSV (mL)"] / df["LVEDV (mL)"])
    assert df["LVEDV (mL)"].corr(df["RVEDV (mL)"]) > 0.5
    assert df["LVEDV (mL)"].corr(df["LVM (g)"]) > 0.4


@pytest.mark.parametrize(("below", "prevalence"), [(50.0, 0.071), (40.0, 0.018)])
def test_reduced_ef_tail_has_the_stated_prevalence(phantoms: pd.DataFrame, below, prevalence):
    """The prevalences `latents.systolic_dysfunction` states, on EF measured on the phantom:
    inside the central 99.8 % of the binomial count for 300 subjects."""
    count = int((phantoms["LVEF (%)"] < below).sum())
    low, high = stats.binom.interval(0.998, len(phantoms), prevalence)
    assert low <= count <= high, (below, count, (low, high))
    assert count >= 2  # a tail, not a stray subject: version 1 clipped LVEF at 38 %


def test_latents_do_not_depend_on_cohort_size_or_order():
    assert subject_latents(5, 3) == subject_latents(5, 3)
    assert subject_latents(5, 3) != subject_latents(5, 4)
    assert subject_latents(5, 3) != subject_latents(6, 3)


def test_volume_curve_is_physiological():
    rr, t_es = 1.0, 0.37
    t = np.linspace(0, rr, 1001)[:-1]
    v = volume_curve(t, rr, t_es, pr=0.16)
    assert v[0] == 1.0 and v.min() == 0.0
    assert t[np.argmin(v)] == pytest.approx(t_es, abs=0.002)  # end-systole where asked
    assert np.all(np.diff(v[t < t_es]) <= 0)  # ejection only empties
    assert np.all(np.diff(v[t > t_es]) >= -1e-12)  # diastole only fills
    rapid = v[np.searchsorted(t, t_es + 0.3)]
    assert 0.6 < rapid < 0.85  # rapid filling then diastasis
    assert v[-1] > rapid + 0.1  # atrial kick completes filling


def test_end_systole_and_t_wave_end_share_the_timing_latent(cohort: Path):
    truth = pd.read_csv(cohort / "truth.csv")
    rr = 50 * truth["frame_interval_s"]
    assert (truth["es_fraction"] > 0.28).all() and (truth["es_fraction"] < 0.5).all()
    qt = truth["latent_qtc_ms"] / 1000 * rr**0.4
    # ES lags QRS onset by the QT interval: within the physiological scatter of ~10 ms.
    assert np.abs(truth["es_time_s"] - qt).max() < 0.1
