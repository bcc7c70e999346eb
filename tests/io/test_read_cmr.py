import gzip
import json
import subprocess
import sys
import zlib

import nibabel as nib
import numpy as np
import pytest

import ptacl.io.cmr as cmr_module
from ptacl.io import InputError, read_cmr


def _volume(shape=(40, 32, 9, 50), seed=0):
    data = np.random.default_rng(seed).integers(0, 100, shape).astype(np.int16)
    if len(shape) == 4:
        data += (np.arange(shape[2]) * 1000).astype(np.int16)[None, None, :, None]
    return data  # intensity // 1000 tells the slice


def _save(data, path, zooms=(1.8, 1.7, 8.0, 0.03), time_unit="sec"):
    img = nib.Nifti1Image(data, np.diag([*zooms[:3], 1.0]))
    img.header.set_zooms(zooms[: data.ndim])
    img.header.set_xyzt_units("mm", time_unit)
    nib.save(img, path)
    return path


def test_4d_with_seg_takes_middle_lv_slice(tmp_path):
    data = _volume()
    seg = np.zeros(data.shape, np.uint8)
    seg[10:20, 5:15, 2:7, :] = 1  # LV on slices 2..6 -> middle is 4
    seg[20:25, 5:15, 1:8, :] = 3  # RV reaches further but does not count
    seg[30, 20, 4, 7] = 2  # a marker to check orientation
    _save(data, tmp_path / "sa.nii.gz")
    _save(seg, tmp_path / "seg_sa.nii.gz")
    rec = read_cmr(tmp_path / "sa.nii.gz")
    assert rec.slice_index == 4
    assert rec.frames.shape == (50, 32, 40) and rec.frames.dtype == np.float32
    assert np.all(rec.frames // 1000 == 4)
    # rows = y, columns = x, same for frames and seg
    np.testing.assert_array_equal(rec.frames[7], data[:, :, 4, 7].T)
    assert rec.seg.dtype == np.uint8 and rec.seg.shape == rec.frames.shape
    assert rec.seg[7, 20, 30] == 2
    assert rec.spacing == pytest.approx((1.7, 1.8)) and rec.frame_interval == pytest.approx(0.03)


@pytest.mark.parametrize("inflate", ["isal", "gzip"])
@pytest.mark.parametrize("klass", [nib.Nifti1Image, nib.Nifti2Image])
def test_nii_gz_inflated_in_memory_reads_as_nibabel_loads_it(tmp_path, monkeypatch, inflate, klass):
    """.nii.gz is inflated by read_cmr itself (ISA-L, or gzip without it): the same values as
    `nib.load`, NIfTI-2 and scaled (scl_slope, scl_inter) int16 included."""
    if inflate == "isal":
        isal_zlib = pytest.importorskip("isal.isal_zlib")
        assert cmr_module.gzip_inflater is isal_zlib.decompressobj  # the fast path is in use
    else:
        monkeypatch.setattr(cmr_module, "gzip_inflater", zlib.decompressobj)
    data = _volume().astype(np.float64) * 0.37 + 5.0  # stored as int16 with a slope
    img = klass(data, np.eye(4))
    img.set_data_dtype(np.int16)
    path = tmp_path / "sa.nii.gz"
    nib.save(img, path)
    loaded = nib.load(path)
    assert type(loaded) is klass and loaded.dataobj.slope != 1
    expected = np.asanyarray(loaded.dataobj)[:, :, 4, :].T.astype(np.float32)
    np.testing.assert_array_equal(read_cmr(path).frames, expected)


def test_4d_without_seg_takes_the_moving_middle_slice(tmp_path):
    rec = read_cmr(_save(_volume(), tmp_path / "sa.nii.gz"))
    assert rec.slice_index == 4 and rec.seg is None
    assert np.all(rec.frames // 1000 == 4)


def test_folder_and_millisecond_time_unit(tmp_path):
    _save(_volume(), tmp_path / "sa.nii.gz", zooms=(1.8, 1.8, 8.0, 30.0), time_unit="msec")
    rec = read_cmr(tmp_path)
    assert rec.frame_interval == pytest.approx(0.03)


def test_3d_single_slice(tmp_path):
    data = _volume((40, 32, 25))
    rec = read_cmr(_save(data, tmp_path / "slice.nii.gz", zooms=(1.5, 1.5, 0.04)))
    assert rec.frames.shape == (25, 32, 40) and rec.slice_index is None
    assert rec.spacing == (1.5, 1.5) and rec.frame_interval == pytest.approx(0.04)


def test_npy_has_unknown_spacing(tmp_path):
    path = tmp_path / "cine.npy"
    np.save(path, np.random.default_rng(0).random((30, 64, 64)))
    rec = read_cmr(path)
    assert rec.frames.shape == (30, 64, 64) and np.isnan(rec.spacing).all()
    assert np.isnan(rec.frame_interval)


def test_wrong_rank(tmp_path):
    path = _save(np.zeros((40, 32), np.int16), tmp_path / "sa.nii.gz")
    with pytest.raises(InputError, match=rf"^{path}: expected a 4-D .* got shape \(40, 32\)"):
        read_cmr(path)


def test_too_few_frames(tmp_path):
    path = _save(_volume((40, 32, 9, 3)), tmp_path / "sa.nii.gz")
    with pytest.raises(InputError, match=rf"^{path}: 3 frames, need at least 10"):
        read_cmr(path)


def test_truncated_gzip(tmp_path):
    path = _save(_volume(), tmp_path / "sa.nii.gz")
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputError, match=rf"^{path}: unreadable NIfTI"):
        read_cmr(path)


def test_not_gzip_at_all(tmp_path):
    path = tmp_path / "sa.nii.gz"
    path.write_bytes(gzip.compress(b"not a nifti header"))
    with pytest.raises(InputError, match=rf"^{path}: unreadable NIfTI"):
        read_cmr(path)


def test_seg_of_another_shape(tmp_path):
    _save(_volume(), tmp_path / "sa.nii.gz")
    seg = _save(np.ones((40, 32, 8, 50), np.uint8), tmp_path / "seg_sa.nii.gz")
    with pytest.raises(InputError, match=rf"^{seg}: seg shape"):
        read_cmr(tmp_path / "sa.nii.gz")


def test_seg_without_lv(tmp_path):
    _save(_volume(), tmp_path / "sa.nii.gz")
    seg = _save(np.full((40, 32, 9, 50), 3, np.uint8), tmp_path / "seg_sa.nii.gz")
    with pytest.raises(InputError, match=rf"^{seg}: seg holds no LV"):
        read_cmr(tmp_path / "sa.nii.gz")


def test_missing(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        read_cmr(tmp_path / "sa.nii.gz")
    with pytest.raises(InputError, match=r"folder holds neither sa\.nii\.gz nor DICOM files"):
        read_cmr(tmp_path)


#: Peak RSS (VmHWM) of a fresh interpreter reading one CMR file.
_PROBE = """
import json, sys
from ptacl.io import InputError, read_cmr
try:
    outcome = {"read": list(read_cmr(sys.argv[1]).frames.shape)}
except InputError as err:
    outcome = {"refused": err.reason}
status = open("/proc/self/status").read().split("VmHWM:")[1].split()
print(json.dumps({**outcome, "peak": int(status[0]) * 1024}))
"""


def _peak(path):
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_a_nii_gz_is_inflated_no_further_than_its_header_says(tmp_path):
    """256 MiB of zeros after a small volume, ~2 MB on disk: not inflated (they were, whole)."""
    path = _save(_volume(), tmp_path / "sa.nii.gz")
    small = _peak(path)
    data = gzip.decompress(path.read_bytes())
    with gzip.open(path, "wb", compresslevel=1) as out:
        out.write(data)
        for _ in range(256):
            out.write(bytes(2**20))
    assert path.stat().st_size < 4 * 2**20
    bombed = _peak(path)
    assert bombed["read"] == small["read"] == [50, 32, 40]
    assert bombed["peak"] < small["peak"] + 64 * 2**20


def test_a_nifti_declaring_a_huge_volume_is_refused_before_its_data(tmp_path):
    """A header of 512 x 512 x 64 x 100 int16 (6.4 GiB as float32) over 6.4 MB of zeros."""
    img = nib.Nifti1Image(np.zeros((1, 1, 1, 1), np.int16), np.eye(4))
    header = img.header.copy()
    header.set_data_shape((512, 512, 64, 100))
    block = header.binaryblock + b"\0" * 4  # the extension flag, then the data would follow
    path = tmp_path / "sa.nii.gz"
    with gzip.open(path, "wb", compresslevel=1) as out:
        out.write(block)
        for _ in range(6):
            out.write(bytes(2**20))
    with pytest.raises(InputError, match=r"the volume \(512, 512, 64, 100\) would take 6400 MiB"):
        read_cmr(path)
    raw = tmp_path / "sa.nii"
    raw.write_bytes(gzip.decompress(path.read_bytes()))
    with pytest.raises(InputError, match=r"would take 6400 MiB as float32, over the limit"):
        read_cmr(raw)
