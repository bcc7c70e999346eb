"""Quality control: judge what `ptacl.io` read before it enters the store or a prediction.

`check_record` / `check_ecg` (and `validate_*`, their R peaks) refuse ECGs that read fine but are not usable or plausible
(`ptacl.qc.ecg`); `check_labels` sets implausible phenotype values to NaN with the reason
(`ptacl.qc.phenotypes`). `ptacl prepare` and `ptacl predict` both call these, so what one
refuses the other refuses too. Kept out of `ptacl.io` so the readers only read; this package
sits above io/ and ecg/ (it uses the R-peak detector) and below data/ and inference/.
"""

from ptacl.qc.ecg import (
    EcgCheck,
    check_ecg,
    check_record,
    identity_findings,
    validate_ecg,
    validate_record,
)
from ptacl.qc.phenotypes import check_labels

__all__ = [
    "EcgCheck",
    "check_ecg",
    "check_labels",
    "check_record",
    "identity_findings",
    "validate_ecg",
    "validate_record",
]
