"""ECG preprocessing (500 Hz, wavelet filtering, z-score) and R-peak detection."""

from ptacl.ecg.peaks import beat_similarity, detect_r_peaks
from ptacl.ecg.preprocess import preprocess_ecg, resample_ecg, wavelet_filter, zscore

__all__ = [
    "beat_similarity",
    "detect_r_peaks",
    "preprocess_ecg",
    "resample_ecg",
    "wavelet_filter",
    "zscore",
]
