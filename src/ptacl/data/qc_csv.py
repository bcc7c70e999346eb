"""qc.csv: one row per file seen (and per phenotype row set aside), with the subject's status,
the reason a file or value was not used and a warning about a file kept; built from the rows
`ptacl.data.prepare` collects, then summarised for its result and the command's report."""

from __future__ import annotations

import pandas as pd

from ptacl.data.discover import Candidates
from ptacl.data.splits import eid_order

STATUSES = ("paired", "ecg_only", "cmr_only", "rejected", "no_images")
QC_COLUMNS = ("eid", "status", "modality", "file", "reason", "warning", "patient_id")
#: qc.csv status of a file that names no subject of the store (e.g. another visit's only file).
IGNORED = "ignored"
#: A qc.csv row before its status: (eid, modality, file, reason[, warning[, patient_id]]).
QcRow = tuple[str, ...]

#: A subject's status by whether its (ECG, CMR) could be used.
SUBJECT_STATUS = {
    (True, True): "paired",
    (True, False): "ecg_only",
    (False, True): "cmr_only",
    (False, False): "rejected",
}


def build_qc_table(qc: list[QcRow], status: dict[str, str]) -> pd.DataFrame:
    """(eid, modality, file, reason[, warning[, patient_id]]) rows -> qc.csv's table, subjects
    in eid order."""
    columns = ["eid", "modality", "file", "reason", "warning", "patient_id"]
    table = pd.DataFrame([row + ("",) * (len(columns) - len(row)) for row in qc], columns=columns)
    # a file that names no subject (another visit's only file, a readme) has no subject status
    table["status"] = table["eid"].map(status).fillna(IGNORED)
    rank = {eid: k for k, eid in enumerate(sorted(status, key=eid_order))}
    table = table.sort_values("eid", key=lambda col: col.map(rank), kind="stable")
    return table[list(QC_COLUMNS)].reset_index(drop=True)


def unused_rows(ecg_found: Candidates, cmr_found: Candidates) -> list[QcRow]:
    """qc rows of the files discovery did not choose: superseded or unusable, then ignored."""
    return [
        *[(e, "ecg", str(p), r) for e, p, r in ecg_found.unused],
        *[(e, "cmr", str(p), r) for e, p, r in cmr_found.unused],
        *[(e, "ecg", str(p), f"ignored: {r}") for e, p, r in ecg_found.ignored],
        *[(e, "cmr", str(p), f"ignored: {r}") for e, p, r in cmr_found.ignored],
    ]


def kept_with_warning(qc_table: pd.DataFrame) -> list[str]:
    """A note counting the files kept with a warning, showing the first."""
    kept_warned = qc_table[(qc_table["reason"] == "") & (qc_table["warning"] != "")]
    if not len(kept_warned):
        return []
    first = kept_warned.iloc[0]
    return [
        f"{len(kept_warned)} file(s) kept with a warning (the 'warning' column of "
        f"qc.csv), e.g. {first['file']}: {first['warning']}"
    ]


def refusals(qc_table: pd.DataFrame, ecg_found: Candidates, cmr_found: Candidates) -> dict:
    """Files refused (not superseded, not ignored) and of how many subjects; files ignored."""
    refused = qc_table[
        qc_table["modality"].isin(["ecg", "cmr"])
        & (qc_table["reason"] != "")
        & ~qc_table["reason"].str.startswith(("superseded", "ignored"))
    ]
    return {
        "refused_files": len(refused),
        "ignored_files": len(ecg_found.ignored) + len(cmr_found.ignored),
        "refused_subjects": refused["eid"].nunique(),
    }
