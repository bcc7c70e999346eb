"""CMR augmentations: temporal sampling keeping frame 0 (end-diastole) first, random resized
crop, rotation, flip, colour jitter (brightness/contrast), Gaussian blur, Gaussian noise.

Each transform is a small callable on a (F, H, W) float32 cine in [0, 1] (F frames, H×W pixels)
that owns its seeded `numpy.random.Generator` (`set_random_state(seed)`). One random draw applies
to every frame, so the cine stays a consistent movie. Spatial resampling uses one
`torch.nn.functional.grid_sample` call over all frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter

from ptacl.data.augment_ecg import RandomTransform, Seed
from ptacl.schema import CMR_FRAMES


@dataclass(frozen=True)
class CmrAugmentConfig:
    """Probabilities and strengths of the CMR augmentations (intensities in [0, 1]).

    `enabled=False` (or `augment=None` in a dataset) turns every one off: frames are then the
    fixed sampling 0, 2, 4, ... used for validation.
    """

    enabled: bool = True
    temporal_p: float = 0.5
    #: each sampled frame except frame 0 moves by up to this many frames
    temporal_jitter: int = 1
    resized_crop_p: float = 0.5
    resized_crop_scale: tuple[float, float] = (0.7, 1.0)
    resized_crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    rotation_p: float = 0.5
    rotation_degrees: float = 20.0
    flip_p: float = 0.5
    colour_p: float = 0.5
    brightness: float = 0.3
    contrast: float = 0.3
    blur_p: float = 0.3
    blur_sigma: tuple[float, float] = (0.1, 1.5)
    noise_p: float = 0.3
    noise_sigma: float = 0.03


def as_unit_float(cine: np.ndarray) -> np.ndarray:
    """uint8 0..255 (the store's CMR dtype) or float in [0, 1] -> float32 in [0, 1]."""
    if cine.dtype == np.uint8:
        return cine.astype(np.float32) / np.float32(255.0)
    return np.asarray(cine, dtype=np.float32)


def frame_indices(frames: int, total: int = CMR_FRAMES) -> np.ndarray:
    """The fixed temporal sampling: `frames` indices at a stride of total // (frames - 1).

    For 26 of 50 this is 0, 2, ..., 48, 50 where 50 wraps to 0: a cine covers one cardiac cycle,
    so frame 50 is the next end-diastole. Frame 0 (end-diastole) always comes first.
    """
    if frames < 1:
        raise ValueError(f"frames must be positive, got {frames}")
    stride = max(1, total // max(frames - 1, 1))
    return (np.arange(frames) * stride) % total


class TemporalSample(RandomTransform):
    """Pick `frames` of the cine; with probability p every index but the first is jittered."""

    def __init__(self, frames: int = 26, jitter: int = 1, p: float = 0.5, seed: Seed = 0) -> None:
        super().__init__(p, seed)
        self.frames = frames
        self.jitter = jitter

    def indices(self, total: int) -> np.ndarray:
        base = frame_indices(self.frames, total)
        if not self.fires() or self.jitter == 0:
            return base
        shift = self.rng.integers(-self.jitter, self.jitter + 1, size=self.frames)
        shift[0] = 0  # frame 0 is end-diastole, where the ECG crop's R peak aligns
        return (base + shift) % total

    def __call__(self, cine: np.ndarray) -> np.ndarray:
        return cine[self.indices(cine.shape[0])]


def affine_resample(cine: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Resample every frame of (F, H, W) with one 2×3 affine `theta` in normalised coordinates.

    Output pixel at normalised (x, y) in [-1, 1]² reads input at theta @ (x, y, 1); outside the
    image reads 0.
    """
    frames = torch.from_numpy(np.ascontiguousarray(cine, dtype=np.float32))[None]  # (1, F, H, W)
    theta_t = torch.as_tensor(theta, dtype=torch.float32)[None]  # (1, 2, 3)
    grid = F.affine_grid(theta_t, list(frames.shape), align_corners=False)
    out = F.grid_sample(frames, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out[0].numpy()


class RandomResizedCrop(RandomTransform):
    """Crop a box of random area fraction and aspect ratio, resized back to H×W."""

    def __init__(
        self,
        scale: tuple[float, float] = (0.7, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        p: float = 0.5,
        seed: Seed = 0,
    ) -> None:
        super().__init__(p, seed)
        self.scale = scale
        self.ratio = ratio

    def __call__(self, cine: np.ndarray) -> np.ndarray:
        if not self.fires():
            return cine
        area = self.rng.uniform(*self.scale)
        aspect = math.exp(self.rng.uniform(math.log(self.ratio[0]), math.log(self.ratio[1])))
        width = min(math.sqrt(area * aspect), 1.0)  # fractions of the image side
        height = min(math.sqrt(area / aspect), 1.0)
        cx = self.rng.uniform(-(1.0 - width), 1.0 - width)
        cy = self.rng.uniform(-(1.0 - height), 1.0 - height)
        theta = np.array([[width, 0.0, cx], [0.0, height, cy]])
        return affine_resample(cine, theta)


class RandomRotation(RandomTransform):
    """Rotate about the image centre by an angle uniform in [-degrees, degrees]."""

    def __init__(self, degrees: float = 20.0, p: float = 0.5, seed: Seed = 0) -> None:
        super().__init__(p, seed)
        self.degrees = degrees

    def __call__(self, cine: np.ndarray) -> np.ndarray:
        if not self.fires():
            return cine
        angle = math.radians(self.rng.uniform(-self.degrees, self.degrees))
        cos, sin = math.cos(angle), math.sin(angle)
        return affine_resample(cine, np.array([[cos, -sin, 0.0], [sin, cos, 0.0]]))


class RandomFlip(RandomTransform):
    """Mirror left-right (the last axis)."""

    def __init__(self, p: float = 0.5, seed: Seed = 0) -> None:
        super().__init__(p, seed)

    def __call__(self, cine: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(cine[..., ::-1]) if self.fires() else cine


class ColourJitter(RandomTransform):
    """Brightness ×U(1±b), then contrast about the cine's mean ×U(1±c); clipped to [0, 1]."""

    def __init__(
        self, brightness: float = 0.3, contrast: float = 0.3, p: float = 0.5, seed: Seed = 0
    ) -> None:
        super().__init__(p, seed)
        self.brightness = brightness
        self.contrast = contrast

    def __call__(self, cine: np.ndarray) -> np.ndarray:
        if not self.fires():
            return cine
        b = self.rng.uniform(1.0 - self.brightness, 1.0 + self.brightness)
        c = self.rng.uniform(1.0 - self.contrast, 1.0 + self.contrast)
        out = cine * np.float32(b)
        mean = out.mean()
        return np.clip((out - mean) * np.float32(c) + mean, 0.0, 1.0).astype(np.float32)


class GaussianBlur(RandomTransform):
    """In-plane Gaussian blur with sigma (pixels) uniform in `sigma`; frames are not mixed."""

    def __init__(
        self, sigma: tuple[float, float] = (0.1, 1.5), p: float = 0.3, seed: Seed = 0
    ) -> None:
        super().__init__(p, seed)
        self.sigma = sigma

    def __call__(self, cine: np.ndarray) -> np.ndarray:
        if not self.fires():
            return cine
        s = self.rng.uniform(*self.sigma)
        return gaussian_filter(cine, sigma=(0.0, s, s), mode="reflect").astype(np.float32)


class GaussianNoise(RandomTransform):
    """Additive Gaussian noise of standard deviation `sigma`, clipped to [0, 1]."""

    def __init__(self, sigma: float = 0.03, p: float = 0.3, seed: Seed = 0) -> None:
        super().__init__(p, seed)
        self.sigma = sigma

    def __call__(self, cine: np.ndarray) -> np.ndarray:
        if not self.fires():
            return cine
        # torch draws the 26 × 84 × 84 normals ~2× faster than numpy's Generator (the costliest
        # step of an item with every augmentation on, BENCHMARKS.md); seeded from this
        # transform's stream, so an item's noise stays a function of its seed
        generator = torch.Generator().manual_seed(int(self.rng.integers(2**63)))
        noise = torch.randn(cine.shape, generator=generator).numpy() * np.float32(self.sigma)
        return np.clip(cine + noise, 0.0, 1.0)


class CmrAugment:
    """Temporal sampling, then the spatial and intensity transforms of a `CmrAugmentConfig`.

    Called as `augment(cine (50, H, W)) -> (frames, H, W)` float32 in [0, 1]; the cine may be
    the store's uint8 row, and only the sampled frames are then read and converted.
    """

    def __init__(self, config: CmrAugmentConfig, *, frames: int = 26, seed: Seed = 0) -> None:
        self.config = config
        self.temporal = TemporalSample(frames, config.temporal_jitter, p=config.temporal_p)
        self.transforms = [
            RandomResizedCrop(
                config.resized_crop_scale, config.resized_crop_ratio, p=config.resized_crop_p
            ),
            RandomRotation(config.rotation_degrees, p=config.rotation_p),
            RandomFlip(p=config.flip_p),
            ColourJitter(config.brightness, config.contrast, p=config.colour_p),
            GaussianBlur(config.blur_sigma, p=config.blur_p),
            GaussianNoise(config.noise_sigma, p=config.noise_p),
        ]
        self.set_random_state(seed)

    def set_random_state(self, seed: Seed) -> CmrAugment:
        """Give every transform its own independent stream derived from one seed."""
        seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
        children = seq.spawn(1 + len(self.transforms))
        self.temporal.set_random_state(children[0])
        for transform, child in zip(self.transforms, children[1:]):
            transform.set_random_state(child)
        return self

    def __call__(self, cine: np.ndarray) -> np.ndarray:
        if not self.config.enabled:
            return as_unit_float(cine[frame_indices(self.temporal.frames, cine.shape[0])])
        cine = as_unit_float(self.temporal(cine))
        for transform in self.transforms:
            cine = transform(cine)
        return cine
