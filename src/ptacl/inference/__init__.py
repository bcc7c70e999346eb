"""Apply a trained ECG encoder to new recordings: export a bundle, load it, predict, retrieve.

ptacl export --model RUN --out BUNDLE --data STORE
ptacl.load(BUNDLE).predict("1000037_20205_2_0.xml")
"""

from ptacl.inference.bundle import read_bundle
from ptacl.inference.bundle_format import Bundle, BundleError, encoder_fingerprint
from ptacl.inference.predictor import ImplausiblePrediction, Predictor, load
from ptacl.io.names import eid_from_path

__all__ = [
    "Bundle",
    "BundleError",
    "ImplausiblePrediction",
    "Predictor",
    "eid_from_path",
    "encoder_fingerprint",
    "load",
    "read_bundle",
]
