"""Plausibility that knows leads: copied channels are errors, an inverted recording a warning;
real recordings (pydicom's Mortara ECG) and `ptacl synth` recordings raise neither."""

from __future__ import annotations

import numpy as np
import pytest

from ptacl.io import InputError, read_ecg
from ptacl.qc import check_ecg
from ptacl.schema import LEADS

V = [LEADS.index(f"V{k}") for k in range(1, 7)]
II = LEADS.index("II")


def _synth(n: int, seed: int = 0) -> list[np.ndarray]:
    """The strips (12, 5000) mV of `ptacl synth`'s first `n` subjects of cohort `seed`."""
    from ptacl.synth.cohort import subject_rngs
    from ptacl.synth.ecg import synth_ecg
    from ptacl.synth.latents import sample_latents

    out = []
    for index in range(n):
        rng_latents, _, rng_ecg = subject_rngs(seed, index)
        out.append(synth_ecg(sample_latents(rng_latents), rng_ecg).signal_mv)
    return out


@pytest.fixture(scope="module")
def real(dicom_path):
    return read_ecg(dicom_path)


@pytest.fixture(scope="module")
def synth():
    return _synth(6)


def _recordings(real, synth):
    """(name, (12, S) mV, fs): the real recording and a few synthetic ones."""
    return [("real", real.signal, real.fs)] + [(f"synth{k}", s, 500.0) for k, s in enumerate(synth)]


def test_real_and_synthetic_recordings_raise_nothing(real, synth):
    for name, signal, fs in _recordings(real, synth):
        assert check_ecg(signal, fs, name).warnings == (), name


@pytest.mark.slow
def test_200_synthetic_recordings_raise_nothing():
    for k, signal in enumerate(_synth(200)):
        assert check_ecg(signal, 500.0, f"synth{k}").warnings == (), k


def _corrupt(signal: np.ndarray, how: str) -> np.ndarray:
    out = signal.copy()
    if how == "V1-V6 = II":
        out[V] = signal[II]
    elif how == "V1-V6 = limb leads":
        out[V] = signal[:6]
    elif how == "V5 = V6":
        out[V[4]] = signal[V[5]]
    elif how == "V5 ~ V6":  # a copy re-quantised at 5 µV: near-exact, not equal
        noise = np.random.default_rng(0).uniform(-0.0025, 0.0025, signal.shape[1])
        out[V[4]] = signal[V[5]] + noise
    return out


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        ("V1-V6 = II", r"leads copied: V1 = II, V2 = II, V3 = II, V4 = II, V5 = II, V6 = II "),
        ("V1-V6 = limb leads", r"leads copied: V1 = I, V2 = II, V3 = III, V4 = aVR, V5 = aVL, "),
        ("V5 = V6", r"leads copied: V6 = V5 \(correlation > 0.999"),
        ("V5 ~ V6", r"leads copied: V6 ~ V5 \(correlation > 0.999"),
    ],
)
def test_copied_channels_are_refused(real, synth, how, reason):
    for name, signal, fs in _recordings(real, synth):
        with pytest.raises(InputError, match=rf"^{name}: {reason}"):
            check_ecg(_corrupt(signal, how), fs, name)


def _usual_axis(signal: np.ndarray) -> bool:
    """QRS clearly up in I, II, aVF and V6: each lead's largest deflection is positive and at
    least twice its largest negative one (a rightward or vertical axis, or a bundle-branch block
    with a deep S, is an inversion that cannot be told from an unusual heart)."""
    leads = [LEADS.index(name) for name in ("I", "II", "aVF", "V6")]
    return all(signal[k].max() > 2 * -signal[k].min() for k in leads)


def test_an_inverted_recording_is_kept_with_a_warning(real, synth):
    usual = [r for r in _recordings(real, synth) if _usual_axis(r[1])]
    assert usual[0][0] == "real" and len(usual) >= 2, [r[0] for r in usual]
    for name, signal, fs in usual:
        check = check_ecg(-signal, fs, name)
        assert len(check.warnings) == 1, name
        assert check.warnings[0].startswith("QRS negative in I, II, aVF, V6 and positive in aVR")


def test_lead_i_inverted_alone_is_not_an_inverted_recording(real):
    # dextrocardia or arm-electrode reversal: I and aVR flip, II and aVF keep their sign
    signal = real.signal.astype(np.float64)
    lead_i, lead_ii = -signal[0], signal[II]
    signal[:6] = [lead_i, lead_ii, lead_ii - lead_i, -(lead_i + lead_ii) / 2,
                  lead_i - lead_ii / 2, lead_ii - lead_i / 2]  # fmt: skip
    assert check_ecg(signal, real.fs, "rec").warnings == ()
