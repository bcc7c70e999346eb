"""UK Biobank field-20209 zips read as delivered (`ptacl.io.cmr_ukb`), on a real MR DICOM."""

import copy
import io
import zipfile

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from ptacl.io import InputError, read_cmr
from ptacl.io.cmr_ukb import parse_manifest

#: Some releases write dates with a comma, unquoted: a naive CSV reader sees an extra column.
HEADER = "filename,patientid,studyid,aet,host,date,time,series discription"


def _mr_small():
    """pydicom's real MR image (64 x 64, a GE scanner's header) and its pixels in intensity."""
    ds = dcmread(get_testdata_file("MR_small.dcm"))
    slope, intercept = float(ds.get("RescaleSlope", 1)), float(ds.get("RescaleIntercept", 0))
    return ds, ds.pixel_array * slope + intercept


def _frames(description, n=20, series=None, offset=0, cardiac=None):
    """`n` frames of MR_small as one cine series: frame t has pixel values + 3 t (+ offset) and
    TriggerTime 40 t ms; returned in shuffled order as {name: bytes}."""
    base, _ = _mr_small()
    series = series or generate_uid()
    out = {}
    for t in np.random.default_rng(n).permutation(n):
        ds = copy.deepcopy(base)
        ds.SeriesDescription, ds.SeriesInstanceUID = description, series
        ds.SOPInstanceUID = generate_uid()
        ds.TriggerTime, ds.InstanceNumber = f"{40.0 * t:.1f}", int(t) + 1
        ds.CardiacNumberOfImages = cardiac or n
        pixels = base.pixel_array + 3 * int(t) + offset
        ds.PixelData = pixels.astype(base.pixel_array.dtype).tobytes()
        buffer = io.BytesIO()
        ds.save_as(buffer)
        out[f"{ds.SOPInstanceUID}.dcm"] = buffer.getvalue()
    return out


def _zip(path, files, manifest_name="manifest.csv", describe=None):
    describe = describe or {}
    lines = [HEADER] + [
        f"{name},1000589,1,AET,host,Mar 3, 2016,14:23:04,{describe[name]}" for name in describe
    ]
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        if manifest_name:
            archive.writestr(manifest_name, "\n".join(lines) + "\n")
    return path


def _described(*groups):
    files, describe = {}, {}
    for description, frames in groups:
        files.update(frames)
        describe.update(dict.fromkeys(frames, description))
    return files, describe


def test_manifest_dates_with_a_comma_keep_their_columns():
    text = f"{HEADER}\na.dcm,1,1,A,h,Mar 3, 2016,10:00,CINE_segmented_SAX_b1\nbroken line\n"
    assert parse_manifest(text) == {"a.dcm": "CINE_segmented_SAX_b1"}


@pytest.mark.parametrize("manifest_name", ["manifest.csv", "manifest.cvs", None])
def test_a_real_mr_dicom_cine_in_a_zip(tmp_path, manifest_name):
    """The cine slice of a zip holding LAX and a repeated acquisition: the last acquisition's
    frames by trigger time, in the DICOM's own intensities, whether the series descriptions
    come from manifest.csv, manifest.cvs or (without a manifest) the DICOM headers."""
    _, pixels = _mr_small()
    first, last = sorted([generate_uid(), generate_uid()])
    files, describe = _described(
        ("CINE_segmented_SAX_b1", _frames("CINE_segmented_SAX_b1", series=last)),
        ("CINE_segmented_SAX_b1", _frames("CINE_segmented_SAX_b1", series=first, offset=500)),
        ("CINE_segmented_LAX_4Ch", _frames("CINE_segmented_LAX_4Ch", n=12, offset=900)),
    )
    path = _zip(tmp_path / "1000589_20209_2_0.zip", files, manifest_name, describe)
    rec = read_cmr(path)
    assert rec.frames.shape == (20, 64, 64) and rec.seg is None and rec.slice_index is None
    for t in (0, 7, 19):
        np.testing.assert_allclose(rec.frames[t], pixels + 3 * t)
    assert rec.frame_interval == pytest.approx(0.04)
    assert rec.spacing == pytest.approx((0.3125, 0.3125)) and rec.source == path


def test_the_unzipped_folder_reads_like_the_zip(tmp_path):
    files, describe = _described(("CINE_segmented_SAX_b1", _frames("CINE_segmented_SAX_b1")))
    path = _zip(tmp_path / "1000589_20209_2_0.zip", files, describe=describe)
    folder = tmp_path / "cmr" / "1000589_20209_2_0"
    zipfile.ZipFile(path).extractall(folder)
    np.testing.assert_array_equal(read_cmr(folder).frames, read_cmr(path).frames)


def test_an_old_single_sax_series_is_cut_by_cardiac_number_of_images(tmp_path):
    """Older exports: every slice in one CINE_segmented_SAX series, in file-name order."""
    files = {}
    for z in range(3):  # slice z: pixels + 1000 z; names sort slice by slice
        frames = _frames("CINE_segmented_SAX", n=15, offset=1000 * z)
        files.update({f"{z}_{k:02d}.dcm": data for k, data in enumerate(frames.values())})
    path = _zip(
        tmp_path / "x_20209_2_0.zip", files, describe=dict.fromkeys(files, "CINE_segmented_SAX")
    )
    rec = read_cmr(path)
    _, pixels = _mr_small()
    assert rec.frames.shape == (15, 64, 64) and rec.slice_index == 1  # all move alike: middle
    np.testing.assert_allclose(rec.frames[4], pixels + 12 + 1000)


def test_a_zip_without_short_axis_cine_names_what_it_holds(tmp_path):
    files, describe = _described(("CINE_segmented_LAX_2Ch", _frames("CINE_segmented_LAX_2Ch", n=3)))
    path = _zip(tmp_path / "1_20209_2_0.zip", files, describe=describe)
    with pytest.raises(InputError, match=r"no short-axis cine series .* CINE_segmented_LAX_2Ch"):
        read_cmr(path)


def test_a_damaged_zip_is_an_input_error(tmp_path):
    path = tmp_path / "1_20209_2_0.zip"
    path.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(InputError, match=r"not a readable zip file"):
        read_cmr(path)
