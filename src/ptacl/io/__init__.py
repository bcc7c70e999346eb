"""Readers for the raw formats users bring: ECG (XML, DICOM, WFDB, arrays), CMR, phenotypes.

Every reader returns fixed units and layouts and raises `InputError`, whose message starts with
the file path and says the reason, for anything it cannot use.
"""

from ptacl.io.cmr import read_cmr
from ptacl.io.ecg import read_ecg
from ptacl.io.errors import InputError
from ptacl.io.phenotypes import read_phenotypes
from ptacl.io.records import CmrRecord, EcgRecord
from ptacl.io.validate import validate_ecg, validate_record

__all__ = [
    "CmrRecord",
    "EcgRecord",
    "InputError",
    "read_cmr",
    "read_ecg",
    "read_phenotypes",
    "validate_ecg",
    "validate_record",
]
