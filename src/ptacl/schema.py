"""What every layer agrees on about the data: lead order, sample rate and array sizes.

The readers (`ptacl.io`), the preprocessing (`ptacl.ecg`, `ptacl.cmr`), quality control
(`ptacl.qc`), the store (`ptacl.data`) and the models all import these from here, so no
lower layer has to import the store to learn them. The phenotype schema (column names,
units, physiological ranges, UK Biobank field IDs) is `ptacl.phenotypes`, beside this module.
This module imports nothing from ptacl.
"""

from __future__ import annotations

#: The 12 standard leads, in the order of the store's ECG rows and of every reader's output.
LEADS: tuple[str, ...] = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
#: Sample rate of a preprocessed ECG (Hz); readers keep the file's rate, preprocessing resamples.
ECG_FS = 500
#: Samples of a preprocessed ECG in the store (10 s at `ECG_FS`); shorter ones are zero-padded.
ECG_SAMPLES = 5000
#: Frames of a preprocessed cine (one cardiac cycle, frame 0 at end-diastole).
CMR_FRAMES = 50
#: Height and width (pixels) of the heart-centred CMR crop.
CMR_SIZE = 84
#: Nominal coverage of the bundles' per-phenotype prediction intervals (`ptacl.eval.conformal`).
INTERVAL_LEVEL = 0.9
