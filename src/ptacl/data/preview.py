"""A picture of what training sees: one paired subject and several augmented views of it.

    save_augmentation_preview("store", "preview.png", views=4)

Column 0 is the validation item (first crop, frames 0, 2, 4, ...), the others are training items
drawn with the given augmentation configs. Rows: leads II and V2 of the ECG crop with its R
peaks, the CMR at end-diastole (frame 0) and a later frame. matplotlib is imported here only.
"""

from __future__ import annotations

from pathlib import Path

from ptacl.data.augment_cmr import CmrAugmentConfig
from ptacl.data.augment_ecg import EcgAugmentConfig
from ptacl.data.datasets import PairedDataset
from ptacl.data.store import Store
from ptacl.schema import LEADS


def save_augmentation_preview(
    store: Store | str | Path,
    out_png: str | Path,
    *,
    index: int = 0,
    split: str | None = None,
    views: int = 4,
    seed: int = 0,
    ecg_config: EcgAugmentConfig | None = None,
    cmr_config: CmrAugmentConfig | None = None,
    later_frame: int = 6,
) -> Path:
    """Draw paired subject `index` of `split` and `views` augmented versions into `out_png`.

    ecg_config / cmr_config default to the default configs (every augmentation on).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    store = store if isinstance(store, Store) else Store.open(store)
    plain = PairedDataset(store, split, train=False, ecg_augment=None, cmr_augment=None)
    if not len(plain):
        raise ValueError(f"{store.root}: no paired subject in split {split!r} to preview")
    augmented = PairedDataset(
        store,
        split,
        train=True,
        ecg_augment=ecg_config or EcgAugmentConfig(),
        cmr_augment=cmr_config or CmrAugmentConfig(),
        seed=seed,
    )
    items = [plain[index]] + [augmented[index] for _ in range(views)]
    leads = [LEADS.index("II"), LEADS.index("V2")]

    fig, axes = plt.subplots(3, len(items), figsize=(3.2 * len(items), 7.5), squeeze=False)
    for col, item in enumerate(items):
        ecg = item["ecg"].numpy()  # (12, crop)
        peaks = item["r_peaks"].numpy()
        peaks = peaks[peaks >= 0]
        ax = axes[0, col]
        for k, lead in enumerate(leads):
            offset = -6.0 * k
            ax.plot(ecg[lead] + offset, lw=0.6, color=f"C{k}", label=LEADS[lead])
            ax.plot(peaks, ecg[lead, peaks] + offset, "v", ms=3, color="k")
        ax.set_yticks([])
        ax.set_xlabel("sample (500 Hz)")
        ax.set_title("validation view" if col == 0 else f"training view {col}", fontsize=9)
        if col == 0:
            ax.legend(fontsize=7, loc="upper right")
        cine = item["cmr"][0].numpy()  # (frames, H, W)
        for row, frame in ((1, 0), (2, min(later_frame, cine.shape[0] - 1))):
            axes[row, col].imshow(cine[frame], cmap="gray", vmin=0, vmax=1)
            axes[row, col].set_axis_off()
            axes[row, col].set_title(
                "frame 0 (ED)" if frame == 0 else f"sampled frame {frame}", fontsize=8
            )
    fig.suptitle(f"subject {items[0]['eid']} of {store.root}", fontsize=10)
    fig.tight_layout()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png
