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


def _frames(description, n=20, series=None, offset=0, cardiac=None, still=False, **tags):
    """`n` frames of MR_small as one cine series: frame t has pixel values + 3 t (+ offset;
    `still`: + 0, no motion) and TriggerTime 40 t ms, `tags` set on each; returned in shuffled
    order as {name: bytes}."""
    base, _ = _mr_small()
    series = series or generate_uid()
    out = {}
    for t in np.random.default_rng(n).permutation(n):
        ds = copy.deepcopy(base)
        ds.SeriesDescription, ds.SeriesInstanceUID = description, series
        ds.SOPInstanceUID = generate_uid()
        ds.TriggerTime, ds.InstanceNumber = f"{40.0 * t:.1f}", int(t) + 1
        ds.CardiacNumberOfImages = cardiac or n
        for key, value in tags.items():
            setattr(ds, key, value)
        pixels = base.pixel_array + (0 if still else 3 * int(t)) + offset
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


def _uids_sorted_against(order):
    """Random UIDs whose string order is the reverse of `order` (acquisition order)."""
    return dict(zip(order, sorted((generate_uid() for _ in order), reverse=True)))


# SeriesNumber as scanners number a repeat (9 < 10 as numbers, "9" > "10" as strings), times
# as HHMMSS.FFFFFF; each case also makes UID order pick the wrong acquisition.
@pytest.mark.parametrize(
    ("first", "second", "rule"),
    [
        ({"SeriesNumber": 9}, {"SeriesNumber": 10}, "SeriesNumber"),
        ({"AcquisitionTime": "142304.5"}, {"AcquisitionTime": "142931.25"}, "AcquisitionTime"),
        ({"SeriesTime": "235959"}, {"SeriesTime": "000102", "SeriesDate": "20160304"}, None),
        ({"SeriesTime": "142304"}, {"SeriesTime": "142931"}, "SeriesTime"),
        ({"InstanceCreationTime": "1423"}, {"InstanceCreationTime": "1429"}, None),
    ],
)
def test_the_last_acquired_is_read_not_the_last_uid(tmp_path, first, second, rule):
    """A re-acquired slice: the second acquisition (offset 0) is read, whatever the UIDs."""
    if "SeriesDate" in second:  # across midnight: the date decides
        first = {**first, "SeriesDate": "20160303"}
        rule = "SeriesTime"
    rule = rule or next(iter(first))
    uids = _uids_sorted_against(["first", "second"])
    files, describe = _described(
        ("CINE_segmented_SAX_b1", _frames("CINE_segmented_SAX_b1", series=uids["first"],
                                          offset=500, **first)),
        ("CINE_segmented_SAX_b1", _frames("CINE_segmented_SAX_b1", series=uids["second"],
                                          **second)),
    )  # fmt: skip
    rec = read_cmr(_zip(tmp_path / "1_20209_2_0.zip", files, describe=describe))
    _, pixels = _mr_small()
    np.testing.assert_allclose(rec.frames[3], pixels + 9)
    assert any(f"2 acquisitions, the last acquired by {rule}" in n for n in rec.notes)


def test_without_any_order_in_the_headers_uid_order_decides_and_says_so(tmp_path):
    uids = _uids_sorted_against(["a", "b"])  # "a" sorts last
    files, describe = _described(
        ("CINE_segmented_SAX_b1", _frames("CINE_segmented_SAX_b1", series=uids["a"])),
        ("CINE_segmented_SAX_b1", _frames("CINE_segmented_SAX_b1", series=uids["b"], offset=9)),
    )
    rec = read_cmr(_zip(tmp_path / "1_20209_2_0.zip", files, describe=describe))
    _, pixels = _mr_small()
    np.testing.assert_allclose(rec.frames[0], pixels)
    assert any("by SeriesInstanceUID order" in n for n in rec.notes)


def test_a_last_acquisition_without_motion_gives_way_to_the_one_before(tmp_path):
    files, describe = _described(
        ("CINE_segmented_SAX_b1", _frames("CINE_segmented_SAX_b1", SeriesNumber=20)),
        ("CINE_segmented_SAX_b1",
         _frames("CINE_segmented_SAX_b1", offset=500, still=True, SeriesNumber=21)),
    )  # fmt: skip
    rec = read_cmr(_zip(tmp_path / "1_20209_2_0.zip", files, describe=describe))
    _, pixels = _mr_small()
    np.testing.assert_allclose(rec.frames[5], pixels + 15)
    assert any(
        "series 21 skipped, its 20 frames are identical (no motion); read series 20" in n
        for n in rec.notes
    )


def _rgb(frames):
    """The same frames as 8-bit RGB (SamplesPerPixel 3), as a screen capture would hold them."""
    out = {}
    for name, data in frames.items():
        ds = dcmread(io.BytesIO(data))
        grey = (ds.pixel_array // 8).astype(np.uint8)
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        ds.PixelData = np.repeat(grey[..., None], 3, axis=-1).tobytes()
        buffer = io.BytesIO()
        ds.save_as(buffer)
        out[name] = buffer.getvalue()
    return out


def _retagged(frames, **tags):
    out = {}
    for name, data in frames.items():
        ds = dcmread(io.BytesIO(data))
        for key, value in tags.items():
            if value is None:
                delattr(ds, key)
            else:
                setattr(ds, key, value)
        buffer = io.BytesIO()
        ds.save_as(buffer)
        out[name] = buffer.getvalue()
    return out


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda f: _retagged(f, Modality="CT"), r"Modality CT, not MR"),
        (
            lambda f: _retagged(f, SOPClassUID="1.2.840.10008.5.1.4.1.1.2"),
            r"SOP class CT Image Storage \(1.2.840.10008.5.1.4.1.1.2\), not an MR image",
        ),
        (_rgb, r"colour frames \(SamplesPerPixel 3, PhotometricInterpretation RGB\)"),
        (lambda f: _retagged(f, CardiacNumberOfImages=30), r"20 frames .* fewer than the 30"),
        (
            lambda f: {k: _retagged({k: v}, TriggerTime="0.0")[k] for k, v in f.items()},
            r"at TriggerTime 0 ms \(a frame interval of 0\)",
        ),
    ],
    ids=["modality-ct", "sop-class-ct", "rgb", "short-cycle", "zero-interval"],
)
def test_images_that_are_not_a_cine_are_refused_by_name(tmp_path, change, reason):
    """What the headers say refuses the file; with the SAX description alone it was stored."""
    frames = change(_frames("CINE_segmented_SAX_b1"))
    files, describe = _described(("CINE_segmented_SAX_b1", frames))
    path = _zip(tmp_path / "1_20209_2_0.zip", files, describe=describe)
    with pytest.raises(InputError, match=reason) as err:
        read_cmr(path)
    assert err.value.source == path


def test_a_missing_modality_is_a_note_not_a_refusal(tmp_path):
    """No Modality tag is no evidence of another modality."""
    frames = _retagged(_frames("CINE_segmented_SAX_b1"), Modality=None)
    files, describe = _described(("CINE_segmented_SAX_b1", frames))
    rec = read_cmr(_zip(tmp_path / "1_20209_2_0.zip", files, describe=describe))
    assert rec.frames.shape == (20, 64, 64)
    assert "frames without a Modality tag, read as MR" in rec.notes


def test_a_zip_holding_each_member_twice_is_refused(tmp_path):
    """Once stored as half a cycle of doubled frames with a frame interval of 0.0."""
    files, describe = _described(("CINE_segmented_SAX_b1", _frames("CINE_segmented_SAX_b1")))
    path = _zip(tmp_path / "1_20209_2_0.zip", files, describe=describe)
    with (
        zipfile.ZipFile(path, "a") as archive,
        pytest.warns(UserWarning, match="Duplicate name"),
    ):
        for name, data in files.items():
            archive.writestr(name, data)
    with pytest.raises(InputError, match=r"member .*\.dcm appears 2 times in the zip"):
        read_cmr(path)
