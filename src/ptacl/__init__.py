"""ptacl: Patient and Temporal Alignment Contrastive Learning between 12-lead ECG and cine CMR.

`import ptacl` stays light: no logger, launcher or plotting library is imported here.
"""

__version__ = "0.1.0"
