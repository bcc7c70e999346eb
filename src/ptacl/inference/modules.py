"""Build a bundle's modules from config.json and load its tensors, checking every shape.

Module classes come from fixed tables keyed by `kind`, and the encoder from the encoder
registry (`ptacl.models.registry`) by its registered `name`, never from a module path in the
file: a bundle can choose among the models this process has registered (ptacl's own, and a
custom encoder once its module is imported) but cannot make us import anything else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from ptacl.inference.bundle_format import WEIGHTS, Bundle, BundleError
from ptacl.models.heads import AttentionPoolPhenotypes, LinearProbe


def _ecg_encoder(spec: Mapping[str, Any], where: str) -> nn.Module:
    """config.json `encoder`: {"kind": "ecg_encoder", "name": registered encoder, "kwargs"};
    bundles written before the registry have no `name` and hold the default ECG ViT."""
    from ptacl.config import ConfigError
    from ptacl.models import DEFAULT_ENCODERS, build_encoder
    from ptacl.models.registry import lookup

    if not isinstance(spec, Mapping) or "kind" not in spec:
        raise BundleError(f"{where}: needs a mapping with 'kind', 'name' and 'kwargs'")
    if spec["kind"] != "ecg_encoder":
        raise BundleError(
            f"{where}: unknown kind {spec['kind']!r}; this ptacl knows ['ecg_encoder']"
        )
    name, kwargs = str(spec.get("name", DEFAULT_ENCODERS["ecg"])), spec.get("kwargs", {})
    try:
        if lookup(name, where).modality != "ecg":
            raise ValueError(f"{name!r} is not an ECG encoder")
        return build_encoder(name, **kwargs)
    except (TypeError, ValueError, KeyError, ConfigError) as e:
        raise BundleError(f"{where}: cannot build encoder {name} from {kwargs}: {e}") from e


def _mlp_projection(kwargs: Mapping[str, Any]) -> nn.Module:
    """The align stage's projection head (Linear, [BatchNorm], ReLU, Linear); bundles written
    before the batch norm existed have no `norm` and get the plain head."""
    from ptacl.models.heads import HeadConfig, projection_head

    config = HeadConfig(
        hidden=int(kwargs["hidden"]), dim=int(kwargs["dim"]), norm=kwargs.get("norm", "none")
    )
    return projection_head(int(kwargs["width"]), config)


def _linear_head(kwargs: Mapping[str, Any]) -> nn.Module:
    return LinearProbe(int(kwargs["in_features"]), int(kwargs["out_features"]))


def _attention_pool_head(kwargs: Mapping[str, Any]) -> nn.Module:
    return AttentionPoolPhenotypes(
        int(kwargs["width"]),
        int(kwargs["outputs"]),
        heads=int(kwargs["heads"]),
        dropout=float(kwargs.get("dropout", 0.0)),
    )


HEADS: dict[str, Callable[[Mapping[str, Any]], nn.Module]] = {
    "linear": _linear_head,
    "attention_pool": _attention_pool_head,
}
PROJECTIONS: dict[str, Callable[[Mapping[str, Any]], nn.Module]] = {"mlp": _mlp_projection}


def _build(
    table: Mapping[str, Callable[[Mapping[str, Any]], nn.Module]],
    spec: Any,
    where: str,
) -> nn.Module:
    if not isinstance(spec, Mapping) or "kind" not in spec:
        raise BundleError(f"{where}: needs a mapping with 'kind' and 'kwargs'")
    kind, kwargs = spec["kind"], spec.get("kwargs", {})
    if kind not in table:
        raise BundleError(f"{where}: unknown kind {kind!r}; this ptacl knows {sorted(table)}")
    try:
        return table[kind](kwargs)
    except (TypeError, ValueError, KeyError) as e:
        raise BundleError(f"{where}: cannot build {kind} from {kwargs}: {e}") from e


def load_checked(module: nn.Module, state: Mapping[str, torch.Tensor], where: str) -> None:
    """Load `state` into `module` after checking names, shapes and dtypes; BundleError otherwise."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [
        f"{k} {tuple(state[k].shape)} in the file, {tuple(expected[k].shape)} from config.json"
        for k in sorted(set(state) & set(expected))
        if state[k].shape != expected[k].shape
    ]
    not_float = [k for k in sorted(state) if not state[k].is_floating_point()]
    not_float = [k for k in not_float if k in expected and expected[k].is_floating_point()]
    problems = []
    if missing:
        problems.append(f"missing {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    if unexpected:
        problems.append(f"unexpected {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
    if wrong:
        problems.append("wrong shape: " + "; ".join(wrong[:5]))
    if not_float:
        problems.append(f"not floating point: {not_float[:5]}")
    if problems:
        raise BundleError(f"{where}: tensors do not match config.json: {', '.join(problems)}")
    module.load_state_dict(state, strict=True)


class BundleModel(nn.Module):
    """ECG encoder, optional projection head and phenotype head, as the bundle describes them.

    `forward(ecg)` takes crops (N, 12, crop) and returns per-crop outputs; the caller averages
    them per recording (see `ptacl.embedding.crops`). `project` maps a recording's
    crop-averaged embedding into the aligned run's shared space, as `ptacl embed` and
    `ptacl evaluate` project it (`ptacl.eval.embed.compute_embeddings`).
    """

    def __init__(self, encoder: nn.Module, head: nn.Module, head_input: str, projection=None):
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.projection = projection
        if head_input not in ("pooled", "tokens"):
            raise ValueError(f"head_input must be 'pooled' or 'tokens', got {head_input!r}")
        self.head_input = head_input

    def forward(self, ecg: torch.Tensor) -> dict[str, torch.Tensor]:
        """ecg (N, 12, crop) -> embedding (N, D), phenotypes (N, P), both per crop."""
        tokens = self.encoder.forward_features(ecg)  # (N, L, D)
        embedding = self.encoder.pool(tokens)  # (N, D)
        out = {"embedding": embedding}
        out["phenotypes"] = self.head(embedding if self.head_input == "pooled" else tokens)
        return out

    def project(self, embedding: torch.Tensor) -> torch.Tensor:
        """(R, D) crop-averaged embeddings -> (R, d) in the shared ECG-CMR space."""
        if self.projection is None:
            raise ValueError("this model has no projection head")
        return self.projection(embedding)


def build_model(bundle: Bundle) -> BundleModel:
    """The verified bundle's modules with its tensors loaded (eval mode, CPU)."""
    cfg = bundle.config
    where = str(bundle.root / "config.json")
    file = str(bundle.root / WEIGHTS)
    encoder = _ecg_encoder(cfg.get("encoder"), f"{where} [encoder]")
    load_checked(encoder, bundle.tensors["encoder"], f"{file} [encoder]")
    projection = None
    if cfg.get("projection") is not None:
        if "projection" not in bundle.tensors:
            raise BundleError(f"{file}: config.json names a projection but it holds none")
        projection = _build(PROJECTIONS, cfg["projection"], f"{where} [projection]")
        load_checked(projection, bundle.tensors["projection"], f"{file} [projection]")
    elif "projection" in bundle.tensors:
        raise BundleError(f"{file}: holds projection tensors that config.json does not describe")
    head_spec = cfg.get("head")
    head = _build(HEADS, head_spec, f"{where} [head]")
    if head_spec.get("input", "pooled") not in ("pooled", "tokens"):
        raise BundleError(f"{where} [head]: input must be 'pooled' or 'tokens'")
    load_checked(head, bundle.tensors["head"], f"{file} [head]")
    model = BundleModel(
        encoder, head, head_input=head_spec.get("input", "pooled"), projection=projection
    )
    return model.eval()
