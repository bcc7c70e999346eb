"""The train / val / test split of a store's subjects: seeded, by group, independent of file and
worker order (`assign_splits`), and the eid order every table of the store follows."""

from __future__ import annotations

import zlib

import numpy as np


def eid_order(eid: str) -> tuple[int, str]:
    """Numeric eids in numeric order (shorter first), any other names after, by text."""
    return (len(eid), eid) if eid.isdigit() else (1 << 30, eid)


def assign_splits(
    eids: list[str], groups: list[str], *, val: float, test: float, seed: int
) -> list[str]:
    """Split subjects by a seeded permutation of the sorted eids within each group.

    Each group (paired, ecg_only, cmr_only) gets round(val * n) validation and round(test * n)
    test subjects, so pairs, which stage 2 and evaluation need, are split in proportion. The
    result depends only on the set of (eid, group) and the seed, not on file or worker order.
    """
    if val < 0 or test < 0 or val + test >= 1:
        raise ValueError(f"val={val} and test={test} must be >= 0 with val + test < 1")
    split = dict.fromkeys(eids, "train")
    for group in sorted(set(groups)):
        members = sorted((e for e, gr in zip(eids, groups) if gr == group), key=eid_order)
        # the group's own stream: a new ECG-only subject must not reshuffle the pairs' split
        order = np.random.default_rng([seed, zlib.crc32(group.encode())]).permutation(len(members))
        n_test, n_val = round(test * len(members)), round(val * len(members))
        for rank, k in enumerate(order):
            if rank < n_test:
                split[members[k]] = "test"
            elif rank < n_test + n_val:
                split[members[k]] = "val"
    return [split[e] for e in eids]
