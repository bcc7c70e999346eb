"""The write side of bundles: fit the phenotype probe on a store, describe, write.

    export_run(RUN, BUNDLE, data=STORE)      # what `ptacl export` does

Above `ptacl.eval` (the probe is evaluation's, the embedding `compute_embeddings`) and beside
nothing the core install needs: loading and predicting (`ptacl.inference`) never import it.
`run` bundles a training run, `write` writes a bundle from modules, `fit` fits the probe, its
plausibility checks and intervals on a store, `card` writes the model card.
"""

from ptacl.export.run import export_run
from ptacl.export.write import export_bundle, export_with_probe

__all__ = ["export_bundle", "export_run", "export_with_probe"]
