"""Raw cohorts written by hand, in the real layouts of /work/shared/FORMATS.md: CardioSoft XML
ECGs, `{eid}/sa.nii.gz` (+ `seg_sa.nii.gz`) cines and a ukbb_cardiac phenotype table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from dicom_builders import mr_frame
from ptacl.schema import LEADS


def synthetic_ecg_uv(seed: int, seconds: float = 10.0, fs: int = 500) -> np.ndarray:
    """(12, S) µV: P-QRS-T beats at 60-80 bpm, limb leads consistent with I and II."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * fs)) / fs
    rr = 60 / rng.uniform(60, 80)
    beats = np.arange(0.4, seconds, rr)

    def wave(centre, amp, width):
        return amp * np.exp(-0.5 * ((t[None] - beats[:, None] - centre) / width) ** 2).sum(0)

    beat = (
        wave(-0.16, 120, 0.02)
        + wave(-0.02, -100, 0.008)
        + wave(0.0, 1000, 0.01)
        + wave(0.025, -250, 0.01)
        + wave(0.28, 300, 0.045)
    )
    lead_i, lead_ii = 0.6 * beat, 1.0 * beat + 40 * np.sin(2 * np.pi * 0.2 * t)
    limb = [lead_i, lead_ii, lead_ii - lead_i, -(lead_i + lead_ii) / 2]
    limb += [lead_i - lead_ii / 2, lead_ii - lead_i / 2]
    chest = [s * beat for s in (-0.5, 0.4, 0.8, 1.3, 1.1, 0.9)]
    return np.stack(limb + chest) + rng.normal(0, 8, (12, len(t)))


def cardiosoft_xml(strip_uv: np.ndarray, resolution: float = 5.0, pid: str | None = None) -> bytes:
    """A CardioSoft XML with a median beat and the 10-s strip, as FORMATS.md describes, and
    `PatientInfo/PID` when `pid` is given."""

    def block(counts, indent):
        out = []
        for lead, row in zip(LEADS, counts):
            lines = [",".join(str(int(v)) for v in row[i : i + 40]) for i in range(0, len(row), 40)]
            body = ",\n\t\t\t".join(lines)
            out.append(
                f'{indent}<WaveformData lead="{lead}">\n\t\t\t{body}\n{indent}</WaveformData>'
            )
        return "\n".join(out)

    counts = np.rint(strip_uv / resolution).astype(int)
    median = np.full((12, 600), 777)  # unmistakable if read instead of the strip
    text = f"""<?xml version="1.0" encoding="ISO-8859-1"?>
<CardiologyXML>
\t<ObservationType>RestECG</ObservationType>
\t<PatientInfo>{"" if pid is None else f"<PID>{pid}</PID>"}<Name>Zoë Ångström</Name></PatientInfo>
\t<RestingECGMeasurements>
\t\t<MedianSamples>
\t\t\t<NumberOfLeads>12</NumberOfLeads>
\t\t\t<SampleRate units="Hz">500</SampleRate>
\t\t\t<ChannelSampleCountTotal>600</ChannelSampleCountTotal>
\t\t\t<Resolution units="uVperLsb">5</Resolution>
{block(median, chr(9) * 3)}
\t\t</MedianSamples>
\t</RestingECGMeasurements>
\t<StripData>
\t\t<NumberOfLeads>12</NumberOfLeads>
\t\t<SampleRate units="Hz">500</SampleRate>
\t\t<ChannelSampleCountTotal>{counts.shape[1]}</ChannelSampleCountTotal>
\t\t<Resolution units="uVperLsb">{resolution:g}</Resolution>
{block(counts, chr(9) * 2)}
\t</StripData>
</CardiologyXML>
"""
    return text.encode("iso-8859-1")


def synthetic_cine(seed: int, frames: int = 50, size: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """(X, Y, 3, T) int16 sa volume with a beating LV, and its seg (labels 1, 2, 3)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    cy, cx = size / 2 + rng.uniform(-6, 6, 2)
    phase = np.arange(frames) / frames
    radius = 12 - 4 * np.sin(np.pi * phase)  # largest at frame 0 (end-diastole)
    dist = np.hypot(yy - cy, xx - cx)[None]  # (1, Y, X)
    lv = dist < radius[:, None, None]
    myo = (dist >= radius[:, None, None]) & (dist < radius[:, None, None] + 5)
    rv = (np.hypot(yy - cy, xx - cx - 22)[None] < 9 - 2 * np.sin(np.pi * phase)[:, None, None]) & ~(
        lv | myo
    )
    image = 200 + 600 * lv + 300 * myo + 500 * rv + rng.normal(0, 20, (frames, size, size))
    seg = (1 * lv + 2 * myo + 3 * rv).astype(np.uint8)  # (T, Y, X)
    vol = np.repeat(image.transpose(2, 1, 0)[:, :, None], 3, axis=2)  # (X, Y, 3, T)
    lab = np.repeat(seg.transpose(2, 1, 0)[:, :, None], 3, axis=2)
    return vol.astype(np.int16), lab


def write_nifti(path: Path, data: np.ndarray) -> Path:
    import nibabel as nib

    img = nib.Nifti1Image(data, np.diag([1.8, 1.8, 8.0, 1.0]))
    img.header.set_zooms((1.8, 1.8, 8.0, 0.02)[: data.ndim])
    img.header.set_xyzt_units("mm", "sec")
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, path)
    return path


def write_subject(
    root: Path,
    eid: str,
    *,
    ecg: bool = True,
    cmr: bool = True,
    seg: bool = True,
    name: str | None = None,
    pid: str | None = None,
) -> None:
    """One subject's files under root/ecg and root/cmr; `pid`: the ECG's own patient id."""
    seed = int(eid) if eid.isdigit() else 0
    if ecg:
        path = root / "ecg" / (name or f"{eid}_20205_2_0.xml")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(cardiosoft_xml(synthetic_ecg_uv(seed), pid=pid))
    if cmr:
        vol, lab = synthetic_cine(seed)
        write_nifti(root / "cmr" / eid / "sa.nii.gz", vol)
        if seg:
            write_nifti(root / "cmr" / eid / "seg_sa.nii.gz", lab)


def phenotype_row(k: int) -> list[float]:
    """Row k of `write_phenotypes`: plausible adult values, internally consistent (SV = EDV -
    ESV, EF = 100 SV / EDV, CO = SV x 70 bpm), different for every k."""
    lvedv, lvesv, rvedv, rvesv = 120.0 + 10 * k, 50.0 + 2 * k, 140.0 + 10 * k, 60.0 + 2 * k
    lvsv, rvsv = lvedv - lvesv, rvedv - rvesv
    return [
        lvedv, lvesv, lvsv, 100 * lvsv / lvedv, lvsv * 70 / 1000, 100.0 + 5 * k,
        rvedv, rvesv, rvsv, 100 * rvsv / rvedv,
    ]  # fmt: skip


def write_phenotypes(path: Path, eids: list[str]) -> Path:
    """A ukbb_cardiac table with an eid column; row k holds `phenotype_row(k)`."""
    from ptacl.phenotypes import PHENOTYPES

    table = pd.DataFrame([phenotype_row(k) for k in range(len(eids))], columns=list(PHENOTYPES))
    table.insert(0, "eid", eids)
    table.to_csv(path, index=False)
    return path


# -- UK Biobank CMR bulk files (field 20209) ------------------------------------------------------

#: A manifest date as some releases write it: the comma splits a naive CSV line in two.
MANIFEST_DATE = "Mar 3, 2016"


def ukb_cmr_files(sa_nii: Path, eid: str, *, seed: int = 0) -> dict[str, bytes]:
    """The files of a UK Biobank field-20209 zip holding the cine of `sa_nii` (a `ptacl synth`
    or ukbb_cardiac `sa.nii.gz`), laid out as FORMATS.md describes, quirks included:

    - flat single-frame DICOMs named by UID, one `CINE_segmented_SAX_b{k}` series per slice
      (k = NIfTI slice + 1), `pixel_array = volume[:, :, z, t].T` (ukbb_cardiac's conversion,
      inverted), TriggerTime = t x the frame interval, positions in LPS (x, y negated);
    - series numbered and timed as a scanner writes them (SeriesNumber rising through the
      exam, SeriesDate/SeriesTime and AcquisitionTime "HHMMSS.FFFFFF"), UIDs random;
    - the mid slice (b{Z // 2 + 1}) acquired twice: first in its place in the stack, unusable
      (one frame held: no motion), then again after the stack (a higher SeriesNumber, a later
      SeriesTime). The first acquisition's UID sorts after the second's, so a reader that
      takes the last UID in string order (UIDs are not timestamps) reads the unusable one;
    - long-axis and flow series that must be ignored;
    - `manifest.csv` with the header "series discription" and dates holding a comma.
    """
    import nibabel as nib

    rng = np.random.default_rng(seed)
    img = nib.load(sa_nii)
    volume = np.asanyarray(img.dataobj)
    if volume.min() < 0:
        raise ValueError("the helper writes uint16 pixels; the volume has negative values")
    dx, dy, dz, dt = (float(v) for v in img.header.get_zooms()[:4])
    frames, slices = volume.shape[3], volume.shape[2]
    files: dict[str, bytes] = {}
    rows: list[tuple[str, str]] = []
    acquired = iter(range(10_000))  # the order series are acquired in

    def uid() -> str:
        return f"1.2.826.0.1.3680043.8.498.{rng.integers(1, 10**12)}.{rng.integers(1, 10**6)}"

    def add_series(
        cine: np.ndarray, description: str, series_uid: str, interval_ms: float, **tags
    ) -> None:
        """One series (T, rows, columns), the next acquired: SeriesNumber and times follow;
        frame t at TriggerTime t x interval_ms."""
        number = next(acquired)
        time = f"{14 + number // 60:02d}{number % 60:02d}04.{rng.integers(10**6):06d}"
        stamps = {"SeriesNumber": 10 + number, "SeriesDate": "20160303", "SeriesTime": time}
        stamps |= {"AcquisitionDate": "20160303", "AcquisitionTime": time}
        for t, pixels in enumerate(cine):
            name = f"1.3.12.2.1107.5.2.18.{rng.integers(10**9, 10**10)}.dcm"
            files[name] = mr_frame(pixels, SeriesDescription=description,
                                   SeriesInstanceUID=series_uid, InstanceNumber=t + 1,
                                   TriggerTime=f"{interval_ms * t:.2f}", **stamps,
                                   **tags)  # fmt: skip
            rows.append((name, description))

    for description in ("CINE_segmented_LAX_4Ch", "flow_250_tp_AoV_bh_ePAT@c"):
        noise = rng.integers(0, 4000, (3, 32, 32))
        add_series(noise, description, uid(), 10.0, CardiacNumberOfImages=3)
    mid = slices // 2
    repeat_uids = sorted([uid(), uid()])  # the unusable first acquisition's sorts last
    for z, again in [*((z, False) for z in range(slices)), (mid, True)]:
        description = f"CINE_segmented_SAX_b{z + 1}"
        cine = volume[:, :, z, :].transpose(2, 1, 0)  # pixel_array = volume[:, :, z, t].T
        series_uid = uid()
        if z == mid:
            series_uid = repeat_uids[0] if again else repeat_uids[1]
            cine = cine if again else np.repeat(cine[:1], frames, axis=0)
        add_series(
            cine,
            description,
            series_uid,
            1000 * dt,
            ImageOrientationPatient=[-1.0, 0.0, 0.0, 0.0, -1.0, 0.0],
            ImagePositionPatient=[-0.0, -0.0, dz * z],
            PixelSpacing=[dy, dx],
            SpacingBetweenSlices=dz,
            SliceThickness=8.0,
            CardiacNumberOfImages=frames,
        )
    lines = ["filename,patientid,studyid,aet,host,date,time,series discription"]
    order = rng.permutation(len(rows))
    for k in order:
        name, description = rows[k]
        lines.append(f"{name},{eid},1,AET,host,{MANIFEST_DATE},14:23:04,{description}")
    files["manifest.csv"] = ("\n".join(lines) + "\n").encode()
    return {name: files[name] for name in [*(rows[k][0] for k in order), "manifest.csv"]}


def write_ukb_cmr_zip(path: Path, files: dict[str, bytes]) -> Path:
    """A zip of `files` (flat), as UK Biobank delivers field 20209."""
    import zipfile

    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path
