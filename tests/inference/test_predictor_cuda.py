"""A bundle predicting on the GPU gives the CPU's phenotypes (skipped without CUDA)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from builders import beats_ecg

import ptacl
from ptacl.phenotypes import PHENOTYPES
from ptacl.schema import ECG_FS


@pytest.mark.gpu
@pytest.mark.parametrize("bundle", ["tiny_bundle", "finetuned_bundle"])
def test_cuda_predictions_equal_the_cpu(bundle: str, request: pytest.FixtureRequest) -> None:
    """Tolerance: 1e-3 relative or 0.05 in the phenotype's unit (mL, %, g, L/min: far below
    what any of them is measured to). Both run fp32, TF32 off on the GPU; what is left is the
    order of summation, which the probe's coefficients may amplify."""
    path: Path = request.getfixturevalue(bundle)
    signals = [beats_ecg(70, 1.0), beats_ecg(55, 0.8)]
    on_cpu = ptacl.load(path).predict(signals, fs=ECG_FS)
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        on_gpu = ptacl.load(path, device="cuda").predict(signals, fs=ECG_FS)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
    assert (on_gpu["status"] == "ok").all()
    np.testing.assert_allclose(
        on_gpu[list(PHENOTYPES)].to_numpy(float),
        on_cpu[list(PHENOTYPES)].to_numpy(float),
        rtol=1e-3,
        atol=0.05,
    )
