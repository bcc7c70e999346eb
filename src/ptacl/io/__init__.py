"""Readers for the raw formats users bring: ECG (CardioSoft and MUSE XML, DICOM, WFDB, HDF5,
arrays), CMR, phenotypes.

Every reader returns fixed units and layouts and raises `InputError`, whose message starts with
the file path and says the reason, for anything it cannot use. Readers only read: whether a
recording or a label is plausible is judged by `ptacl.qc`, and this package imports nothing
from the layers above it (data, ecg, cmr, qc, training, eval, inference).
"""

from ptacl.io.cmr import read_cmr
from ptacl.io.ecg import read_ecg
from ptacl.io.errors import InputError
from ptacl.io.phenotypes import read_phenotypes
from ptacl.io.records import CmrRecord, EcgRecord

__all__ = [
    "CmrRecord",
    "EcgRecord",
    "InputError",
    "read_cmr",
    "read_ecg",
    "read_phenotypes",
]
