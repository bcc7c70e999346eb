"""ptacl: Patient and Temporal Alignment Contrastive Learning between 12-lead ECG and cine CMR.

`import ptacl` stays light: no logger, launcher or plotting library is imported here.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ptacl.inference import Predictor

__version__ = "0.1.0"


def load(bundle: str | os.PathLike[str], *, device: str = "cpu") -> Predictor:
    """Load an inference bundle written by `ptacl export`: `ptacl.load(b).predict(path_or_array)`.

    Imports torch and the model code only when called, so `import ptacl` stays light.
    """
    from ptacl.inference import load as load_bundle

    return load_bundle(bundle, device=device)
