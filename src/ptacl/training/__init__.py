"""Training stages (Lightning modules) and the infrastructure they share: `optim` (AdamW and its
schedule), `loaders`, `trainer` (Trainer, callbacks, loggers, precision, DDP) and `resume`.

Nothing outside `ptacl.training` and `ptacl.cli` imports this package (tests/test_layering.py):
reading a run folder back is `ptacl.runs`, and the heads are in `ptacl.models.heads`, so
evaluation, export and inference never import Lightning.
"""
