import numpy as np
import pytest

from ptacl.cmr import crop, crop_box, find_heart_centre, preprocess_cmr, resample_frames
from ptacl.cmr.preprocess import resample_labels
from ptacl.io import CmrRecord, InputError


def _phantom(f=30, h=120, w=140, centre=(70.0, 50.0), seed=0):
    """A still chest (bright static blobs, noise) with a 'heart' whose two chambers beat."""
    rng = np.random.default_rng(seed)
    rows, cols = np.indices((h, w))
    phase = np.cos(2 * np.pi * np.arange(f) / f)  # ED at frame 0
    frames = np.empty((f, h, w), np.float32)
    seg = np.zeros((f, h, w), np.uint8)
    body = np.exp(-(((rows - h / 2) / 45) ** 2 + ((cols - w / 2) / 55) ** 2)) * 200
    body += 400 * (np.hypot(rows - 20, cols - 120) < 10)  # a bright, still structure
    for t in range(f):
        lv_r = 12 + 4 * phase[t]
        rv_r = 9 + 3 * phase[t]
        lv = np.hypot(rows - centre[0], cols - (centre[1] + 8)) < lv_r
        myo = (np.hypot(rows - centre[0], cols - (centre[1] + 8)) < lv_r + 5) & ~lv
        rv = np.hypot(rows - centre[0], cols - (centre[1] - 18)) < rv_r
        frames[t] = body + 500 * lv + 450 * rv + 100 * myo + rng.normal(0, 10, (h, w))
        seg[t][myo] = 2
        seg[t][rv] = 3
        seg[t][lv] = 1
    return frames, seg


def test_resample_keeps_frame_zero_and_is_cyclic():
    frames = np.arange(25, dtype=np.float32)[:, None, None] * np.ones((1, 2, 3), np.float32)
    out = resample_frames(frames, 50)
    assert out.shape == (50, 2, 3)
    np.testing.assert_allclose(out[::2, 0, 0], np.arange(25))  # original frames kept
    np.testing.assert_allclose(out[1::2, 0, 0][:-1], np.arange(24) + 0.5)
    assert out[49, 0, 0] == pytest.approx(12.0)  # halfway from frame 24 back to frame 0
    assert resample_frames(frames, 25) is frames
    down = resample_frames(np.arange(50, dtype=np.float32)[:, None, None], 25)
    np.testing.assert_allclose(down[:, 0, 0], np.arange(0, 50, 2))


def test_resample_labels_stay_labels():
    seg = np.arange(25, dtype=np.uint8)[:, None, None] % 4
    out = resample_labels(seg, 50)
    assert out.dtype == np.uint8 and set(np.unique(out)) <= {0, 1, 2, 3}
    assert out[0, 0, 0] == 0 and out[2, 0, 0] == seg[1, 0, 0]


def test_centre_from_seg_is_the_label_centroid():
    seg = np.zeros((3, 50, 60), np.uint8)
    seg[0, 10:20, 30:40] = 1
    seg[2, 10:20, 40:50] = 3
    assert find_heart_centre(np.zeros(seg.shape), seg) == pytest.approx((14.5, 39.5))


@pytest.mark.parametrize("centre", [(70.0, 50.0), (40.0, 95.0)])
def test_centre_from_motion_finds_the_beating_heart(centre):
    frames, seg = _phantom(centre=centre)
    truth = find_heart_centre(frames, seg)
    found = find_heart_centre(frames)
    assert np.hypot(found[0] - truth[0], found[1] - truth[1]) < 5


def test_crop_pads_outside_the_image():
    image = np.arange(100, dtype=np.float32).reshape(1, 10, 10)
    box = crop_box((1.0, 8.0), 6)
    assert box == (-2, 4, 5, 11)
    out = crop(image, box, fill=-1)
    assert out.shape == (1, 6, 6)
    assert np.all(out[0, :2] == -1) and np.all(out[0, :, 5] == -1)
    np.testing.assert_array_equal(out[0, 2:, :5], image[0, 0:4, 5:10])


@pytest.mark.parametrize("use_seg", [True, False])
def test_preprocess_holds_the_whole_heart(use_seg):
    frames, seg = _phantom(centre=(30.0, 40.0))  # near the corner: the crop needs padding
    record = CmrRecord(frames, (1.8, 1.8), 0.03, seg if use_seg else None, source="x/sa.nii.gz")
    out, info = preprocess_cmr(record)
    assert out.shape == (50, 84, 84) and out.dtype == np.float32
    assert out.min() == 0.0 and out.max() == 1.0
    assert info["centre_from"] == ("seg" if use_seg else "motion") and info["frames_in"] == 30
    r0, r1, c0, c1 = info["box"]
    assert r1 - r0 == 84 and c1 - c0 == 84 and r0 < 0  # padded above
    # Every heart voxel of every frame falls inside the box.
    rows, cols = np.nonzero(seg.any(axis=0))
    assert rows.min() >= r0 and rows.max() < r1 and cols.min() >= c0 and cols.max() < c1
    if use_seg:
        kept = info["seg"]
        assert kept.shape == (50, 84, 84)
        assert (kept[0] == 1).sum() == (seg[0] == 1).sum()  # frame 0 (ED) kept whole
        # Labels and image stay aligned: blood pool is far brighter than what surrounds it.
        assert out[0][kept[0] == 1].mean() > out[0][kept[0] == 0].mean() + 0.25
        assert out[0][kept[0] == 1].std() < 0.05


def test_constant_image_is_an_input_error():
    record = CmrRecord(np.ones((20, 90, 90), np.float32), (1.0, 1.0), 0.03, None, source="x.npy")
    with pytest.raises(InputError, match=r"^x.npy: the cropped image is constant"):
        preprocess_cmr(record)
