"""PTACL losses: pure functions of tensors, no learnable parameters."""

from ptacl.losses.alignment import alignment_matrix
from ptacl.losses.distributed import gather_with_grad, world_info
from ptacl.losses.global_contrastive import global_contrastive_loss
from ptacl.losses.local_contrastive import cosine_alignment_loss, local_contrastive_loss

__all__ = [
    "alignment_matrix",
    "cosine_alignment_loss",
    "gather_with_grad",
    "global_contrastive_loss",
    "local_contrastive_loss",
    "world_info",
]
