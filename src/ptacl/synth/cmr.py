"""Render the phantom as a short-axis bSSFP-like cine stack and its segmentation.

The heart sits at a random position and rotation inside a larger field of view, surrounded by
torso, lungs, pericardial fat and the descending aorta; bright blood, dark myocardium,
partial-volume edges, a coil-sensitivity shading, a per-subject gain and Rician noise.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from ptacl.synth.geometry import FRAMES, SLICE_GAP_MM, HeartGeometry

GRID = 104  # in-plane pixels (rows = cols)
PIXEL_MM = 1.8


@dataclass(frozen=True)
class Cine:
    """A rendered cine: image and seg are (F, Z, H, W); centre is the heart's (row, col)."""

    image: np.ndarray  # int16
    seg: np.ndarray  # uint8: 1 LV pool, 2 LV myocardium, 3 RV pool
    frame_interval_s: float
    heart_centre: tuple[float, float]
    lv_centre: tuple[float, float]


_ABSENT = np.float32(-100.0)  # radius of a structure missing from a slice: covers nothing


def _cover(dist: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Fraction of each pixel inside a disc (partial-volume edge one pixel wide)."""
    cover = radius - dist
    cover *= np.float32(1.0 / PIXEL_MM)
    cover += np.float32(0.5)
    return np.clip(cover, 0.0, 1.0, out=cover)


def _paint(img: np.ndarray, value: float, cover: np.ndarray) -> None:
    """Blend `value` into `img` in place where `cover` (0..1) says."""
    diff = img - np.float32(value)
    diff *= cover
    img -= diff


def _radius(r: np.ndarray, grow: float = 0.0) -> np.ndarray:
    """(F, Z) radii in mm -> (F, Z, 1, 1) float32, grown by `grow`, absent where r == 0."""
    return np.where(r > 0, r + grow, _ABSENT).astype(np.float32)[:, :, None, None]


def render_cine(geo: HeartGeometry, rng: np.random.Generator) -> Cine:
    """Render `geo` into images and labels on a GRID x GRID in-plane grid."""
    nz = geo.n_slices
    theta = np.pi + rng.uniform(-0.6, 0.6)  # direction LV -> RV; RV on the image's left
    axis = np.array([np.sin(theta), np.cos(theta)])  # (row, col) unit vector
    # The heart's centre is the middle of its ED extent along the LV-RV axis.
    lv_extent = geo.r_epi[0].max()
    rv_extent = (geo.rv_offset[0] + geo.rv_radius[0] + geo.rv_wall_mm).max()
    centre = (GRID - 1) / 2 + rng.uniform(-8, 8, size=2)  # heart centre, pixels
    lv_centre = centre - axis * (rv_extent - lv_extent) / 2 / PIXEL_MM
    tilt = rng.uniform(-0.08, 0.08, size=2)  # long axis not quite through-plane: centres drift
    z_rel = (np.arange(nz) - geo.mid_slice) * SLICE_GAP_MM
    lv_c = lv_centre[None, :] + tilt[None, :] * z_rel[:, None] / PIXEL_MM  # (Z, 2) pixels

    rows, cols = np.mgrid[0:GRID, 0:GRID].astype(np.float32)
    tissue = _background(rows, cols, centre, axis, nz, rng)  # (Z, H, W)
    # The heart only touches a window around its centre; layering it there keeps this fast.
    half = int(np.ceil(((rv_extent + lv_extent) / 2 + 10.0) / PIXEL_MM + 6))
    r0, c0 = (max(int(v) - half, 0) for v in centre)
    r1, c1 = (min(int(v) + half + 1, GRID) for v in centre)
    wr, wc = rows[r0:r1, c0:c1], cols[r0:r1, c0:c1]
    # (Z, h, w) distances in mm from each slice's LV centre, and along / across the LV-RV axis.
    f32 = np.float32
    dr = ((wr[None] - lv_c[:, 0, None, None]) * PIXEL_MM).astype(f32)
    dc = ((wc[None] - lv_c[:, 1, None, None]) * PIXEL_MM).astype(f32)
    dist_lv = np.hypot(dr, dc)[None]  # (1, Z, h, w)
    along = (dr * f32(axis[0]) + dc * f32(axis[1]))[None]
    across = (-dr * f32(axis[1]) + dc * f32(axis[0]))[None]

    r_endo = geo.r_endo.astype(f32)[:, :, None, None]  # (F, Z, 1, 1)
    r_epi = geo.r_epi.astype(f32)[:, :, None, None]
    rho = geo.rv_radius.astype(f32)[:, :, None, None]
    off = geo.rv_offset.astype(f32)[:, :, None, None]
    dist_rv = np.sqrt((along - off) ** 2 + across**2)  # (F, Z, h, w)

    shape = (FRAMES, nz, GRID, GRID)
    seg = np.zeros(shape, np.uint8)
    win = seg[:, :, r0:r1, c0:c1]
    win[dist_rv < rho] = 3
    win[np.broadcast_to(dist_lv < r_epi, win.shape)] = 2
    win[np.broadcast_to(dist_lv < r_endo, win.shape)] = 1

    blood, myo, fat = 1.0, rng.uniform(0.2, 0.3), rng.uniform(0.6, 0.8)
    img = np.broadcast_to(tissue[None], shape).copy()
    w = img[:, :, r0:r1, c0:c1]  # a view: painting it paints img
    # Epicardial fat is patchy: thick along part of the circumference, absent elsewhere.
    patchy = np.clip(
        0.3 + 0.9 * np.cos(np.arctan2(across, along) - rng.uniform(0, 2 * np.pi)), 0, 1
    )
    fat_cover = np.maximum(
        _cover(dist_lv, _radius(geo.r_epi, 2.5)),
        _cover(dist_rv, _radius(geo.rv_radius, geo.rv_wall_mm + 2.0)),
    )
    fat_cover *= patchy.astype(np.float32)
    _paint(w, fat, fat_cover)
    _paint(w, myo, _cover(dist_rv, _radius(geo.rv_radius, geo.rv_wall_mm)))
    _paint(w, blood, _cover(dist_rv, _radius(geo.rv_radius)))
    _paint(w, myo, _cover(dist_lv, _radius(geo.r_epi)))
    _paint(w, blood, _cover(dist_lv, _radius(geo.r_endo)))
    # Papillary muscles: dark dots in the pool on the lateral side, labelled as pool (as
    # ukbb_cardiac does), so they change the image but not the volumes.
    pap_r = _radius(np.where(geo.r_endo > 12.0, rng.uniform(2.5, 3.5), 0.0))
    for angle in (np.pi - 0.9, np.pi + 0.9):
        reach = 0.6 * r_endo
        d_pap = np.sqrt(
            (along - reach * np.cos(angle)) ** 2 + (across - reach * np.sin(angle)) ** 2
        )
        _paint(w, myo, _cover(d_pap, pap_r))

    # Coil sensitivity: a smooth gradient across the field of view, different per subject.
    g = rng.uniform(-0.35, 0.35, size=2)
    shade = 1.0 + (g[0] * (rows - GRID / 2) + g[1] * (cols - GRID / 2)) / GRID
    gain = rng.uniform(50.0, 90.0)
    img *= (gain * shade).astype(f32)
    img = _rician(img, f32(gain * rng.uniform(0.008, 0.016)), rng)
    return Cine(
        image=np.rint(img).astype(np.int16),
        seg=seg,
        frame_interval_s=geo.frame_interval_s,
        heart_centre=(float(centre[0]), float(centre[1])),
        lv_centre=(float(lv_c[geo.mid_slice, 0]), float(lv_c[geo.mid_slice, 1])),
    )


def _rician(img: np.ndarray, sigma: np.float32, rng: np.random.Generator) -> np.ndarray:
    """Magnitude of the image plus complex Gaussian noise of s.d. `sigma`.

    Drawing ~10 M normals per subject dominated the run time, so each (frame, slice) plane
    takes its noise from a random offset into a shared pool of fresh normals: planes differ,
    and no spatial structure is introduced.
    """
    n_plane = GRID * GRID
    planes = img.reshape(-1, n_plane)
    pool = rng.standard_normal(16 * n_plane, dtype=np.float32) * sigma
    windows = np.lib.stride_tricks.sliding_window_view(pool, n_plane)
    starts = rng.integers(0, windows.shape[0], size=(2, planes.shape[0]))
    real = planes + windows[starts[0]]
    imag = windows[starts[1]]
    real *= real
    imag *= imag
    real += imag
    return np.sqrt(real, out=real).reshape(img.shape)


def _background(
    rows: np.ndarray, cols: np.ndarray, centre: np.ndarray, axis: np.ndarray, nz: int, rng
) -> np.ndarray:
    """Static torso around the heart: body, subcutaneous fat, lungs, aorta; (Z, H, W) in [0, 1]."""
    f32 = np.float32
    body = rng.uniform(0.25, 0.4)
    out = np.full((nz, GRID, GRID), body, f32)
    r = (rows - GRID / 2) * PIXEL_MM
    c = (cols - GRID / 2) * PIXEL_MM
    # The torso is wider than the field of view; its anterior edge (top rows) shows fat.
    skin = np.hypot(r / 150.0, c / 190.0)
    out += (rng.uniform(0.65, 0.85) - out) * np.clip((skin - 0.78) * 25, 0, 1)[None]
    hr_mm = (rows - centre[0]) * PIXEL_MM
    hc_mm = (cols - centre[1]) * PIXEL_MM
    # Lungs flank the heart on both sides of the LV-RV axis, somewhat posterior.
    along = hr_mm * axis[0] + hc_mm * axis[1]
    across = -hr_mm * axis[1] + hc_mm * axis[0]
    for side in (-1.0, 1.0):
        lung = np.hypot((along - side * 95.0) / 38.0, (across + 15.0 * side) / 70.0)
        out += (0.03 - out) * np.clip((1.0 - lung) * 6, 0, 1)[None]
    # Descending aorta: bright, posterior and to the image's right of the heart.
    ao = np.hypot(hr_mm - 62.0, hc_mm - 28.0)
    out += (0.9 - out) * np.clip(0.5 + (11.0 - ao) / PIXEL_MM, 0, 1)[None]
    # Liver/diaphragm appears in the lowest slices.
    liver = np.clip((np.arange(nz) - (nz - 3)) / 2.0, 0, 1).astype(f32)
    out += (0.45 - out) * liver[:, None, None] * np.clip((hr_mm + hc_mm) / 60.0, 0, 1)[None]
    return out


def write_nifti(path: Path, volume: np.ndarray, frame_interval_s: float) -> None:
    """Write (F, Z, H, W) as NIfTI (X=cols, Y=rows, Z, T), gzip with a fixed mtime."""
    data = volume.transpose(3, 2, 1, 0)  # a C-ordered (F, Z, H, W) is already NIfTI's F order
    affine = np.diag([PIXEL_MM, PIXEL_MM, SLICE_GAP_MM, 1.0])
    img = nib.Nifti1Image(data, affine)
    img.header.set_zooms((PIXEL_MM, PIXEL_MM, SLICE_GAP_MM, frame_interval_s))
    img.header.set_xyzt_units("mm", "sec")
    img.header.set_sform(affine, code=1)
    img.header.set_qform(affine, code=1)
    # nibabel's own gzip writer stamps the current time; fixing mtime keeps the bytes stable.
    path.write_bytes(gzip.compress(img.to_bytes(), compresslevel=1, mtime=0))


__all__ = ["FRAMES", "GRID", "PIXEL_MM", "Cine", "render_cine", "write_nifti"]
