"""ECG augmentations: Fourier-transform surrogate, random crop, jitter, rescale.

Each transform is a small callable on a numpy array that owns its seeded `numpy.random.Generator`
(MONAI style: `set_random_state(seed)` reseeds it). `EcgAugment` chains them from an
`EcgAugmentConfig` and keeps the R peaks in step with the crop. Arrays are (C, S): C leads,
S samples at 500 Hz, float32. Every operation is vectorised over leads and samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: R peaks per item are padded to this width with -1 so the default collate can stack them
#: (a 5 s crop at 300 bpm holds 25 beats).
MAX_PEAKS = 32

Seed = int | np.random.SeedSequence | None


@dataclass(frozen=True)
class EcgAugmentConfig:
    """Probabilities and strengths of the ECG augmentations (signals are z-scored per lead).

    `enabled=False` (or passing `augment=None` to a dataset) turns every random transform off;
    the crop then starts at the first sample, as for validation.
    """

    enabled: bool = True
    random_crop: bool = True
    ft_surrogate_p: float = 0.5
    #: fraction of the full 2π phase range randomised (braindecode's `phase_noise_magnitude`)
    ft_surrogate_magnitude: float = 0.075
    jitter_p: float = 1.0
    jitter_sigma: float = 0.03
    rescale_p: float = 1.0
    rescale_sigma: float = 0.5
    #: a scale drawn below this is raised to it, so a lead's polarity never flips
    rescale_min: float = 0.1


class RandomTransform:
    """Base of every random transform: one probability and one seeded generator."""

    def __init__(self, p: float = 1.0, seed: Seed = 0) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{type(self).__name__}: probability {p} is outside [0, 1]")
        self.p = p
        self.set_random_state(seed)

    def set_random_state(self, seed: Seed) -> RandomTransform:
        self.rng = np.random.default_rng(seed)
        return self

    def fires(self) -> bool:
        """Draw whether the transform applies this time (always drawn, to keep streams aligned)."""
        return bool(self.rng.random() < self.p)


def ft_surrogate(ecg: np.ndarray, phases: np.ndarray) -> np.ndarray:
    """Add `phases` (S // 2 + 1,) to every lead's Fourier phases; amplitude spectra are kept.

    The same phases for all leads keep the inter-lead structure (the derived limb leads stay
    linear combinations of I and II). DC and Nyquist keep phase 0 so the result stays real.
    ecg: (C, S) -> (C, S) float32.
    """
    n = ecg.shape[-1]
    phases = phases.copy()
    phases[0] = 0.0
    if n % 2 == 0:
        phases[-1] = 0.0
    spectrum = np.fft.rfft(ecg, axis=-1)  # (C, S//2+1)
    return np.fft.irfft(spectrum * np.exp(1j * phases), n=n, axis=-1).astype(np.float32)


class FtSurrogate(RandomTransform):
    """Fourier-transform surrogate (Schwabedal et al. 2019) with phases shared across leads."""

    def __init__(self, magnitude: float = 0.075, p: float = 0.5, seed: Seed = 0) -> None:
        super().__init__(p, seed)
        if not 0.0 <= magnitude <= 1.0:
            raise ValueError(f"FtSurrogate: magnitude {magnitude} is outside [0, 1]")
        self.magnitude = magnitude

    def __call__(self, ecg: np.ndarray) -> np.ndarray:
        if not self.fires():
            return ecg
        phases = self.rng.uniform(0.0, 2.0 * np.pi, ecg.shape[-1] // 2 + 1) * self.magnitude
        return ft_surrogate(ecg, phases)


class Jitter(RandomTransform):
    """Additive Gaussian noise of standard deviation `sigma` on every sample."""

    def __init__(self, sigma: float = 0.03, p: float = 1.0, seed: Seed = 0) -> None:
        super().__init__(p, seed)
        self.sigma = sigma

    def __call__(self, ecg: np.ndarray) -> np.ndarray:
        if not self.fires():
            return ecg
        noise = self.rng.standard_normal(ecg.shape, dtype=np.float32) * np.float32(self.sigma)
        return ecg + noise


class Rescale(RandomTransform):
    """Multiply the whole recording by one scale drawn from N(1, sigma), at least `minimum`."""

    def __init__(
        self, sigma: float = 0.5, p: float = 1.0, minimum: float = 0.1, seed: Seed = 0
    ) -> None:
        super().__init__(p, seed)
        self.sigma = sigma
        self.minimum = minimum

    def __call__(self, ecg: np.ndarray) -> np.ndarray:
        if not self.fires():
            return ecg
        scale = max(float(self.rng.normal(1.0, self.sigma)), self.minimum)
        return (ecg * np.float32(scale)).astype(np.float32)


def crop_ecg(
    ecg: np.ndarray, r_peaks: np.ndarray, start: int, crop: int
) -> tuple[np.ndarray, np.ndarray]:
    """Cut samples [start, start + crop) and shift the R peaks with them.

    ecg: (C, S); r_peaks: (P,) sample indices into ecg (no padding). Returns the (C, crop) window
    (zero-padded at the end if S < start + crop) and the peaks inside it, relative to `start`.
    """
    window = ecg[:, start : start + crop]
    if window.shape[-1] < crop:
        window = np.pad(window, ((0, 0), (0, crop - window.shape[-1])))
    peaks = np.asarray(r_peaks, dtype=np.int64) - start
    return window, peaks[(peaks >= 0) & (peaks < crop)]


def pad_peaks(peaks: np.ndarray, width: int = MAX_PEAKS) -> np.ndarray:
    """(P,) -> (width,) int64, padded with -1 (extra peaks beyond `width` are dropped)."""
    out = np.full(width, -1, dtype=np.int64)
    peaks = np.asarray(peaks, dtype=np.int64)[:width]
    out[: len(peaks)] = peaks
    return out


class RandomCrop(RandomTransform):
    """A window of `crop` samples at a uniform random start within the valid `length`."""

    def __init__(self, crop: int = 2500, seed: Seed = 0) -> None:
        super().__init__(1.0, seed)
        self.crop = crop

    def __call__(
        self, ecg: np.ndarray, r_peaks: np.ndarray, length: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        length = ecg.shape[-1] if length is None else length
        start = int(self.rng.integers(0, max(length - self.crop, 0) + 1))
        return crop_ecg(ecg, r_peaks, start, self.crop)


class EcgAugment:
    """Random crop, then FT surrogate, jitter and rescale, as set by an `EcgAugmentConfig`.

    Called as `augment(ecg (C, S), r_peaks (P,), length) -> (ecg (C, crop), r_peaks (P',))`
    where `length` is the number of valid (not zero-padded) samples.
    """

    def __init__(self, config: EcgAugmentConfig, *, crop: int = 2500, seed: Seed = 0) -> None:
        self.config = config
        self.crop = RandomCrop(crop)
        self.transforms = [
            FtSurrogate(config.ft_surrogate_magnitude, p=config.ft_surrogate_p),
            Jitter(config.jitter_sigma, p=config.jitter_p),
            Rescale(config.rescale_sigma, p=config.rescale_p, minimum=config.rescale_min),
        ]
        self.set_random_state(seed)

    def set_random_state(self, seed: Seed) -> EcgAugment:
        """Give every transform its own independent stream derived from one seed."""
        seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
        children = seq.spawn(1 + len(self.transforms))
        self.crop.set_random_state(children[0])
        for transform, child in zip(self.transforms, children[1:]):
            transform.set_random_state(child)
        return self

    def __call__(
        self, ecg: np.ndarray, r_peaks: np.ndarray, length: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        if not self.config.enabled:
            return crop_ecg(ecg, r_peaks, 0, self.crop.crop)
        if self.config.random_crop:
            ecg, r_peaks = self.crop(ecg, r_peaks, length)
        else:
            ecg, r_peaks = crop_ecg(ecg, r_peaks, 0, self.crop.crop)
        ecg = np.ascontiguousarray(ecg, dtype=np.float32)
        for transform in self.transforms:
            ecg = transform(ecg)
        return ecg, r_peaks
