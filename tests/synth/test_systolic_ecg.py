"""Generator version 2: the ECG carries part of LV systolic function. Measured here on the
rendered median beat with a simple measure of the test's own, never from the generator's
parameters: the QRS is wider with a low EF, and an anterior infarct leaves Q waves."""

from __future__ import annotations

import numpy as np
import pytest

from ptacl.synth.cohort import subject_rngs
from ptacl.synth.ecg import LEADS, MEDIAN_R_INDEX, synth_ecg
from ptacl.synth.latents import Latents, sample_latents

SEED = 5
MS_PER_SAMPLE = 2.0


def _qrs_width_ms(median: np.ndarray) -> float:
    """QRS duration of a (12, 600) median beat: the contiguous stretch around the R peak where
    the spatial speed of the 12 leads stays above 10 % of its peak, within ±120 ms of R."""
    beat = median - np.median(median[:, :100], axis=1, keepdims=True)  # baseline before P
    speed = np.sqrt((np.diff(beat, axis=1) ** 2).sum(axis=0))  # (599,)
    speed = np.convolve(speed, np.ones(5) / 5, mode="same")  # 10 ms smoothing
    lo, hi = MEDIAN_R_INDEX - 60, MEDIAN_R_INDEX + 60
    peak = lo + int(np.argmax(speed[lo:hi]))
    above = speed > 0.1 * speed[peak]
    start = end = peak
    while start > lo and above[start - 1]:
        start -= 1
    while end < hi and above[end + 1]:
        end += 1
    return (end - start + 1) * MS_PER_SAMPLE


def _subjects(keep, n: int, limit: int = 1500) -> list[tuple[Latents, np.ndarray]]:
    """(latents, median beat) of the first `n` subjects of SEED whose latents pass `keep`."""
    found = []
    for index in range(limit):
        rng_latents, _, rng_ecg = subject_rngs(SEED, index)
        lat = sample_latents(rng_latents)
        if keep(lat):
            found.append((lat, synth_ecg(lat, rng_ecg).median_mv))
            if len(found) == n:
                break
    return found


@pytest.fixture(scope="module")
def reduced_and_normal() -> tuple[list, list]:
    reduced = _subjects(lambda lat: lat.lvef_pct < 40.0, 12)
    normal = _subjects(lambda lat: lat.lvef_pct > 55.0, 20)
    return reduced, normal


def test_qrs_is_wider_when_ef_is_below_40_than_above_55(reduced_and_normal):
    reduced, normal = reduced_and_normal
    assert len(reduced) == 12  # the tail exists among the first 1,500 subjects
    wide = np.mean([_qrs_width_ms(median) for _, median in reduced])
    narrow = np.mean([_qrs_width_ms(median) for _, median in normal])
    assert 80.0 <= narrow <= 110.0  # the measure reads a normal QRS as normal
    assert wide - narrow >= 10.0, (wide, narrow)


def test_an_anterior_infarct_leaves_q_waves_in_v2_v3():
    """The early QRS (R - 60 ms to R - 10 ms) dips deeper in V2 and V3 after a large anterior
    infarct than with a healthy ventricle: the scar's missing forces (Q waves, or QS)."""

    def early_dip_mv(median: np.ndarray) -> float:
        beat = median - np.median(median[:, :100], axis=1, keepdims=True)
        early = beat[
            [LEADS.index("V2"), LEADS.index("V3")], MEDIAN_R_INDEX - 30 : MEDIAN_R_INDEX - 5
        ]
        return float(early.min(axis=1).mean())

    def anterior(lat: Latents) -> bool:
        return lat.infarct_territory == 1 and lat.infarct_pct >= 15.0 and not lat.lbbb

    def healthy(lat: Latents) -> bool:
        return lat.infarct_pct == 0.0 and lat.lvef_pct > 55.0

    infarcts = [early_dip_mv(m) for _, m in _subjects(anterior, 6, limit=4000)]
    controls = [early_dip_mv(m) for _, m in _subjects(healthy, 20)]
    assert len(infarcts) == 6
    assert np.mean(infarcts) <= np.mean(controls) - 0.1, (infarcts, controls)
