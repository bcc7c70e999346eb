"""Single-frame MR DICOMs for the CMR reader tests (tests/io) and the UK Biobank zip writer
(tests/data/raw_cohort.py). A plain module beside the root conftest (pytest puts tests/ on
sys.path), like faults.py.
"""

from __future__ import annotations

import io

import numpy as np


def mr_frame(pixels: np.ndarray, **tags) -> bytes:
    """One single-frame MR image as DICOM bytes (uint16 pixels, explicit VR little endian);
    `tags` set any further attributes (SeriesInstanceUID, TriggerTime, RescaleSlope, ...)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.Modality = "MR"
    for key, value in tags.items():
        setattr(ds, key, value)
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = np.ascontiguousarray(pixels, dtype=np.uint16).tobytes()
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()
