"""Bounded memory on any CMR archive (`ptacl.io.cmr_limits`): zip bombs are named refusals or
notes, with the reader's peak memory measured in a subprocess (VmHWM).

Each archive is written streaming by `zipfile` (deflate turns zeros into almost nothing), so
the tests stay small on disk and in memory however much the members claim.
"""

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from pydicom.uid import generate_uid

from dicom_builders import mr_frame
from ptacl.io import InputError, read_cmr
from ptacl.io.cmr_limits import DEFAULT_LIMITS, CmrLimits, MiB

HEADER = "filename,patientid,studyid,aet,host,date,time,series discription"
#: The ceiling stated in docs/reliability.md for one subject's CMR read with default limits.
CEILING = 1024 * MiB

#: Reads one CMR file in a fresh interpreter and prints its outcome and peak RSS (VmHWM).
PROBE = """
import json, sys
from ptacl.io import InputError, read_cmr
from ptacl.io.cmr_limits import CmrLimits
try:
    record = read_cmr(sys.argv[1], CmrLimits(**json.loads(sys.argv[2])))
    outcome = {"read": list(record.frames.shape), "notes": list(record.notes)}
except InputError as err:
    outcome = {"refused": err.reason}
status = open("/proc/self/status").read().split("VmHWM:")[1].split()
outcome["peak"] = int(status[0]) * 1024
print(json.dumps(outcome))
"""


def _peak(path, **limits):
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(path), json.dumps(limits)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def _cine(n=20, shape=(64, 64)):
    """A small valid cine (a square that grows and shrinks) as {name: DICOM bytes}."""
    series, out = generate_uid(), {}
    for t in range(n):
        pixels = np.full(shape, 100, np.uint16)
        r = 10 + int(8 * np.sin(np.pi * t / n))
        pixels[32 - r : 32 + r, 32 - r : 32 + r] = 900
        out[f"sax_{t:02d}.dcm"] = mr_frame(
            pixels,
            SeriesDescription="CINE_segmented_SAX_b1",
            SeriesInstanceUID=series,
            TriggerTime=f"{40.0 * t:.1f}",
            InstanceNumber=t + 1,
            CardiacNumberOfImages=n,
            PixelSpacing=[1.8, 1.8],
        )
    return out


def _write(path, files, describe, extra=()):
    """A zip of `files` and manifest.csv describing them, then `extra` members written
    streaming: (name, bytes of zeros, compression)."""
    lines = [HEADER, *(f"{n},1,1,AET,host,Mar 3 2016,14:23:04,{d}" for n, d in describe.items())]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr("manifest.csv", "\n".join(lines) + "\n")
        for name, size, compression in extra:
            info = zipfile.ZipInfo(name)
            info.compress_type = compression
            with archive.open(info, "w", force_zip64=True) as member:
                chunk = bytes(MiB)
                for _ in range(size // MiB):
                    member.write(chunk)
    return path


def _lie_about_size(path, name, size):
    """Rewrite the sizes `name` declares (local header and central directory) as `size`."""
    data = bytearray(path.read_bytes())
    encoded = name.encode()
    # (signature, offset of the uncompressed size, of the name's length, of the name)
    for signature, offset, length_at, name_at in (
        (b"PK\x03\x04", 22, 26, 30),  # local file header
        (b"PK\x01\x02", 24, 28, 46),  # central directory entry
    ):
        at = data.find(signature)
        while at >= 0:
            length = int.from_bytes(data[at + length_at : at + length_at + 2], "little")
            if bytes(data[at + name_at : at + name_at + length]) == encoded:
                data[at + offset : at + offset + 4] = size.to_bytes(4, "little")
            at = data.find(signature, at + 4)
    path.write_bytes(bytes(data))


def test_a_zip_of_400_blank_megapixel_frames_is_refused_before_its_pixels(tmp_path):
    """Issue 20: a ~1 MB zip of 400 blank 1024 x 1024 MR frames took prepare to 9 GB."""
    frames = {
        t: mr_frame(
            np.zeros((1024, 1024), np.uint16),
            SeriesInstanceUID="1.2.3.4",
            TriggerTime=f"{20.0 * t:.1f}",
            CardiacNumberOfImages=50,
        )
        for t in range(50)
    }
    files = {f"b{z}_{t:02d}.dcm": data for z in range(1, 9) for t, data in frames.items()}
    describe = {name: f"CINE_segmented_SAX_{name.split('_')[0]}" for name in files}
    path = _write(tmp_path / "1_20209_2_0.zip", files, describe)
    assert path.stat().st_size < 8 * MiB
    outcome = _peak(path)
    assert (
        "the cine would take 1600 MiB as float32 (400 frames of 1024 x 1024)"
        in (outcome["refused"])
    )
    assert outcome["peak"] < CEILING / 2


def test_a_big_member_beside_a_valid_cine_is_a_note_not_read(tmp_path):
    """A member over the per-member limit is not inflated: the cine is read, the member noted."""
    files = _cine()
    extra = [("1.3.12.2.1107.5.2.18.99.dcm", 80 * MiB, zipfile.ZIP_DEFLATED)]
    path = _write(tmp_path / "1_20209_2_0.zip", files, {}, extra)
    record = read_cmr(path)
    assert record.frames.shape == (20, 64, 64)
    assert (
        "1.3.12.2.1107.5.2.18.99.dcm: 80 MiB inflated, over the limit of 64 MiB per member: "
        "not read" in record.notes
    )


@pytest.mark.slow
def test_a_2_gib_member_beside_a_valid_cine_stays_under_the_ceiling(tmp_path):
    """Issue 20: a 2.2 MB zip with a 2 GiB member took prepare to 4.25 GB, silently."""
    extra = [("1.3.12.2.1107.5.2.18.99.dcm", 2048 * MiB, zipfile.ZIP_DEFLATED)]
    path = _write(tmp_path / "1_20209_2_0.zip", _cine(), {}, extra)
    outcome = _peak(path)
    assert outcome["read"] == [20, 64, 64]
    assert any("2048 MiB inflated, over the limit" in note for note in outcome["notes"])
    assert outcome["peak"] < CEILING / 2


def test_a_member_whose_inflation_cannot_be_bounded_is_not_inflated(tmp_path):
    """bzip2 inflates a whole compressed block at once: ~300 bytes on disk became 128 MiB in
    memory, however small the directory says the member is."""
    extra = [("1.3.12.2.1107.5.2.18.98.dcm", 128 * MiB, zipfile.ZIP_BZIP2)]
    path = _write(tmp_path / "1_20209_2_0.zip", _cine(), {}, extra)
    _lie_about_size(path, "1.3.12.2.1107.5.2.18.98.dcm", 1000)
    with zipfile.ZipFile(path) as archive:
        assert archive.getinfo("1.3.12.2.1107.5.2.18.98.dcm").file_size == 1000
    outcome = _peak(path)
    assert outcome["read"] == [20, 64, 64]
    assert any(
        "compressed with bzip2 (method 12), not deflate" in note for note in outcome["notes"]
    )
    assert outcome["peak"] < 100 * MiB + _baseline(tmp_path)


def _baseline(tmp_path):
    """Peak RSS of reading the same cine without any bomb beside it."""
    return _peak(_write(tmp_path / "2_20209_2_0.zip", _cine(), {}))["peak"]


def test_a_cine_frame_whose_directory_understates_it_is_refused_by_its_crc(tmp_path):
    """A directory that lies: the stream stops at the declared size and the CRC says so."""
    files = _cine()
    path = _write(
        tmp_path / "1_20209_2_0.zip", files, dict.fromkeys(files, "CINE_segmented_SAX_b1")
    )
    _lie_about_size(path, "sax_03.dcm", 2000)
    with pytest.raises(InputError, match=r"sax_03.dcm: unreadable zip member \(Bad CRC-32"):
        read_cmr(path)


def test_limits_are_checked_from_the_directory_and_overridable(tmp_path):
    files = _cine()
    path = _write(
        tmp_path / "1_20209_2_0.zip", files, dict.fromkeys(files, "CINE_segmented_SAX_b1")
    )
    with pytest.raises(InputError, match=r"21 members, over the limit of 10 per archive"):
        read_cmr(path, CmrLimits(members=10))
    with pytest.raises(InputError, match=r"sax_00.dcm: .* over the limit of 4000 bytes per member"):
        read_cmr(path, CmrLimits(member_bytes=4000))  # the manifest (~1.3 KB) is read
    with pytest.raises(InputError, match=r"series found: none; 20 files not read \(over the"):
        read_cmr(path, CmrLimits(member_bytes=1000))  # the manifest too: headers unread
    with pytest.raises(InputError, match=r"inflated from the archive, over the limit"):
        read_cmr(path, CmrLimits(archive_bytes=50_000))
    assert read_cmr(path, CmrLimits(cine_bytes=20 * 64 * 64 * 4)).frames.shape == (20, 64, 64)
    with pytest.raises(InputError, match=r"the cine would take 327680 bytes"):
        read_cmr(path, CmrLimits(cine_bytes=20 * 64 * 64 * 4 - 1))


def test_limit_overrides_parse_sizes_and_name_what_is_wrong():
    limits = DEFAULT_LIMITS.with_overrides(["cine_bytes=512MiB", "members=100", "header-bytes=64K"])
    assert (limits.cine_bytes, limits.members, limits.header_bytes) == (512 * MiB, 100, 65536)
    assert limits.member_bytes == DEFAULT_LIMITS.member_bytes
    for bad in ("cine=1", "cine_bytes=-1", "cine_bytes=lots", "members"):
        with pytest.raises(ValueError, match=r"--cmr-limit .* expected NAME=SIZE"):
            DEFAULT_LIMITS.with_overrides([bad])
