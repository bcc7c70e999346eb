"""File names as UK Biobank delivers bulk files, and the eid a file or folder stands for.

UK Biobank names a bulk file `{eid}_{field}_{instance}_{array}` plus an extension: the resting
ECG `1000037_20205_2_0.xml`, the short-axis cine zip `1000589_20209_2_0.zip` (or the folder it
unzips to, `1000589_20209_2_0/`). Instance 2 is the first imaging visit, 3 the repeat imaging
visit. The one parser here serves `ptacl prepare` (both modalities) and `ptacl predict`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

#: `{eid}_{field}_{instance}_{array}`; the array is optional, as some exports drop it.
_UKB_NAME = re.compile(r"^(?P<eid>\d+)_(?P<field>\d+)_(?P<instance>\d+)(?:_(?P<array>\d+))?$")
#: Field 20205: resting 12-lead ECG (CardioSoft XML).
UKB_ECG_FIELD = "20205"
#: Field 20209: short-axis cine CMR (a zip of DICOM files).
UKB_CMR_FIELD = "20209"
#: The first imaging visit, the default visit `ptacl prepare` reads.
DEFAULT_INSTANCE = 2


@dataclass(frozen=True)
class UkbName:
    """The parts of a UK Biobank bulk-file name."""

    eid: str
    field: str
    instance: int
    array: int

    @property
    def visit(self) -> str:
        """'2_0': instance and array, as the file name writes them."""
        return f"{self.instance}_{self.array}"


def stem(path: str | Path) -> str:
    """The name without its extensions: 'a_1_2_0.xml' -> 'a_1_2_0', 'sa.nii.gz' -> 'sa'.

    Everything after the first dot goes, as no UK Biobank name or eid holds a dot.
    """
    return Path(path).name.split(".")[0]


def parse_ukb_name(path: str | Path) -> UkbName | None:
    """The UK Biobank parts of a file or folder name, or None for any other name."""
    match = _UKB_NAME.match(stem(path))
    if match is None:
        return None
    return UkbName(
        eid=match["eid"],
        field=match["field"],
        instance=int(match["instance"]),
        array=int(match["array"] or 0),
    )


def eid_from_path(path: str | Path) -> str:
    """'1000037_20205_2_0.xml' -> '1000037', '1000589_20209_2_0/' -> '1000589'; any other
    name -> its stem ('patient-7.dcm' -> 'patient-7')."""
    ukb = parse_ukb_name(path)
    return ukb.eid if ukb is not None else stem(path)


#: An eid spelled as a number: digits (leading zeros too), a decimal ("1038021.0", what pandas
#: writes after a NaN in the column) or scientific notation ("1.038021e+06", a spreadsheet's).
_NUMERIC_EID = re.compile(r"[+]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def normalise_eid(text: object) -> str:
    """The join key of an eid: numbers as plain integers, anything else stripped as it is.

    ' 1038021', '01038021', '1038021.0' and '1.038021e+06' all give '1038021', so tables and
    file names meet however a tool spelled the number; 'sub-01' stays 'sub-01'. Raises
    ValueError for a number that is not an integer ('1038021.5'): no subject has that eid, and
    rounding it would attach the row to another subject.
    """
    eid = str(text).strip()
    if not _NUMERIC_EID.fullmatch(eid):
        return eid
    if "." not in eid and "e" not in eid.lower():
        return str(int(eid))  # exact for any length, no float on the way
    from decimal import Decimal

    value = Decimal(eid)  # exact: float would round 17-digit eids
    if value != value.to_integral_value():
        raise ValueError(f"eid {eid!r} is not an integer")
    return str(int(value))
