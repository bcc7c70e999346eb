"""The weights contract of a stage module: which encoders and heads it holds.

Every stage's LightningModule (`MaePretraining`, `SimclrPretraining`, `AlignModule`,
`FinetuneModule`) declares

    encoders() -> {modality: encoder}      the `TokenEncoder`s it trains ("ecg", "cmr")
    heads()    -> {name: head}             its freshly initialised heads (none for an MAE)

The optimiser gives the heads their learning rate by it (`ptacl.training.optim`), the run folder's
`weights/` holds one file per part (`ptacl.run_weights`), and the parameter counts a stage prints
come from it (`parameter_counts`): renaming an attribute changes none of these.
"""

from __future__ import annotations

from typing import Protocol

from torch import nn

from ptacl.models import count_parameters


class StageModule(Protocol):
    def encoders(self) -> dict[str, nn.Module]: ...

    def heads(self) -> dict[str, nn.Module]: ...

    def parameters(self, recurse: bool = True): ...  # nn.Module's


def parameter_counts(module: StageModule) -> dict[str, int]:
    """Trainable parameters: "<modality>_encoder" for each encoder, "heads" (all heads
    together), "other" (the rest: an MAE's decoder) and "total"."""
    counts = {f"{m}_encoder": count_parameters(e) for m, e in module.encoders().items()}
    counts["heads"] = sum(count_parameters(h) for h in module.heads().values())
    total = count_parameters(module)
    counts["other"] = total - sum(counts.values())
    counts["total"] = total
    return counts
