"""Synthetic paired ECG–CMR cohort in UK Biobank formats (`ptacl synth`).

latents.py (physiology) -> geometry.py (heart phantom over the cycle, phenotypes) -> cmr.py
(cine + segmentation as NIfTI); ecg.py (dipole ECG) -> cardiosoft_xml.py (CardioSoft XML);
cohort.py puts subjects together, in parallel and deterministically; preview.py draws a sheet.
"""
