"""How much of a CMR file the readers will inflate and hold: bounded whatever the file claims.

A field-20209 zip of 400 blank 1024 x 1024 frames is ~1 MB on disk (deflate turns zeros into
almost nothing) and 800 MB of pixels; a 2 GiB member of zeros fits in 2 MB. So sizes are
checked from the zip directory before anything is inflated, counted again while streaming
(a directory can lie), and the cine's size (frames x rows x columns) before its pixels are
converted. Defaults leave several times a UK Biobank visit's needs (~600 members of
~100 KB, a stack of ~10 slices x 50 frames of ~200 x 200 pixels, ~80 MB as float32) and keep
one subject's reading under ~1 GB of memory; `ptacl prepare --cmr-limit NAME=SIZE` overrides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace

MiB = 2**20
GiB = 2**30
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMG]i?B?)?", re.IGNORECASE)
_UNITS = {"": 1, "K": 2**10, "M": MiB, "G": GiB}


@dataclass(frozen=True)
class CmrLimits:
    """Limits on one CMR archive (zip or unzipped folder) or DICOM folder.

    members: files in one archive (the directory's count, before anything is read)
    member_bytes: inflated size of one member read whole (a DICOM frame; ~100 KB in UK Biobank)
    archive_bytes: inflated bytes read from one archive, all members together
    header_bytes: bytes of a member read to find its DICOM header (pixels are not inflated)
    cine_bytes: the frames of every slice read, as float32 (frames x rows x columns x 4)
    """

    members: int = 20_000
    member_bytes: int = 64 * MiB
    archive_bytes: int = 2 * GiB
    header_bytes: int = 256 * 2**10
    cine_bytes: int = 256 * MiB

    def with_overrides(self, items: list[str]) -> CmrLimits:
        """A copy with `NAME=SIZE` items applied (sizes in bytes, or with K/M/G[iB] units)."""
        names = {f.name for f in fields(self)}
        changes: dict[str, int] = {}
        for item in items:
            name, _, value = item.partition("=")
            name = name.strip().replace("-", "_")
            match = _SIZE.fullmatch(value.strip())
            if name not in names or match is None or float(match[1]) <= 0:
                raise ValueError(
                    f"--cmr-limit {item!r}: expected NAME=SIZE with NAME one of "
                    f"{', '.join(sorted(names))} and SIZE a positive number (units K, M, G)"
                )
            unit = _UNITS[(match[2] or "")[:1].upper()]
            changes[name] = int(float(match[1]) * unit)
        return replace(self, **changes)


DEFAULT_LIMITS = CmrLimits()


def mib(size: int) -> str:
    """A byte count for messages: '64 MiB', '2048 MiB'."""
    return f"{size / MiB:.0f} MiB" if size >= MiB else f"{size} bytes"
