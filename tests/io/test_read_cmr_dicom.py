import numpy as np
import pytest
from pydicom.uid import generate_uid

from dicom_builders import mr_frame
from ptacl.io import InputError, read_cmr


def _write_series(folder, n_slices=3, n_frames=20, shape=(48, 56), series=None, **tags):
    """Classic MR cine: one file per (slice, frame), written in shuffled order; `tags` set on
    every file."""
    series = series or generate_uid()
    rng = np.random.default_rng(0)
    jobs = [(z, t) for z in range(n_slices) for t in range(n_frames)]
    normal = np.cross([0.7, 0.7, 0.0], [0.0, 0.0, -1.0])
    for k in rng.permutation(len(jobs)):
        z, t = jobs[k]
        pixels = np.full(shape, 100 * z + t, np.uint16)
        pixels[0, 1] = 999  # marks rows vs columns
        data = mr_frame(
            pixels,
            SeriesInstanceUID=series,
            InstanceNumber=z * n_frames + t + 1,
            ImageOrientationPatient=[0.7, 0.7, 0.0, 0.0, 0.0, -1.0],
            ImagePositionPatient=list(10.0 * z * normal + [5.0, -3.0, 40.0]),
            PixelSpacing=[1.4, 1.6],
            TriggerTime=32.5 * t,
            RescaleSlope=2,
            RescaleIntercept=-10,
            **tags,
        )
        (folder / f"IM_{z}_{t}.dcm").write_bytes(data)


def test_dicom_cine_folder_mid_slice_by_trigger_time(tmp_path):
    _write_series(tmp_path)
    rec = read_cmr(tmp_path)
    assert rec.frames.shape == (20, 48, 56) and rec.slice_index == 1 and rec.seg is None
    np.testing.assert_array_equal(rec.frames[:, 5, 5], 2 * (100 + np.arange(20)) - 10)
    assert rec.frames[0, 0, 1] == 2 * 999 - 10
    assert rec.spacing == (1.4, 1.6) and rec.frame_interval == pytest.approx(0.0325)


def test_dicom_cine_too_few_frames(tmp_path):
    _write_series(tmp_path, n_slices=1, n_frames=4)
    with pytest.raises(InputError, match=rf"^{tmp_path}: 4 frames in the mid-ventricular slice"):
        read_cmr(tmp_path)


def test_two_series_in_one_folder(tmp_path):
    _write_series(tmp_path, n_slices=1, n_frames=10)
    for path in tmp_path.iterdir():
        path.rename(tmp_path / f"a_{path.name}")
    _write_series(tmp_path, n_slices=1, n_frames=10)
    with pytest.raises(InputError, match=r"holds 2 DICOM series"):
        read_cmr(tmp_path)


def test_a_ct_series_in_a_dicom_folder_is_refused(tmp_path):
    _write_series(tmp_path, n_slices=1, Modality="CT")
    with pytest.raises(InputError, match=rf"^{tmp_path}: Modality CT, not MR"):
        read_cmr(tmp_path)


def test_a_dicom_folder_too_large_for_the_limits_is_refused_before_its_pixels(tmp_path):
    from ptacl.io.cmr_limits import CmrLimits

    _write_series(tmp_path, n_slices=2, n_frames=10)  # 20 frames of 48 x 56 x 4 bytes
    with pytest.raises(InputError, match=r"the cine would take 215040 bytes .* over the limit"):
        read_cmr(tmp_path, CmrLimits(cine_bytes=200_000))
    with pytest.raises(InputError, match=r"IM_0_0.dcm: .* over the limit of 1000 bytes"):
        read_cmr(tmp_path, CmrLimits(member_bytes=1000))
