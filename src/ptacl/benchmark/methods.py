"""The methods of the paper's Tables 1 and 2, each a `ptacl` command with a preset's config.

As in the paper, Table 2 reads regression-setting runs and Table 1 retrieval-setting runs
(PTACL and Global only are trained in both: `RETRIEVAL_SETTING`). A method names the runs it
starts from (`needs`) and those it brings along (`brings`); `select_methods` closes a choice
over both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

#: The paper trains PTACL in two settings (METHOD.md): regression runs (Table 2) with the ptacl
#: config as it is (σ = 0.1, τ_global 0.1, τ_local 1.0) and retrieval runs (Table 1) with these
#: overrides on top. Overrides rather than ptacl_retrieval.yaml, for every preset: the
#: two settings then differ in these three keys only, whatever the preset's sizes (a test checks
#: that the paper's two YAMLs differ in exactly these).
RETRIEVAL_SETTING = ("loss.sigma=0", "loss.temperature_global=0.07", "loss.temperature_local=0.07")


@dataclass(frozen=True)
class Method:
    """One row of the paper's tables: how it is trained and how it is evaluated."""

    key: str
    input: str  # ECG or CMR
    label: str  # as the paper names it
    train: tuple[str, ...] | None  # `ptacl` argv before --data/--out/--config; None: no training
    config: str | None  # config kind of the preset
    overrides: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()  # methods whose runs this one starts from (--ecg-init, --like)
    evaluate: bool = True  # `ptacl evaluate` its run (LP, and retrieval with both encoders)
    finetune: bool = False  # also FN+AP in its evaluation
    # Which table reads its evaluation: "regression" -> Table 2 (its LP / FN+AP R²),
    # "retrieval" -> Table 1 (its retrieval; its LP is not a Table 2 row).
    setting: str = "regression"
    brings: tuple[str, ...] = ()  # methods selected with this one (its other setting, ...)


METHODS: tuple[Method, ...] = (
    Method("ecg_mae", "ECG", "MAE", ("pretrain", "ecg"), "ecg_mae"),
    Method("cmr_mae", "CMR", "MAE", ("pretrain", "cmr"), "cmr_mae"),
    Method("simclr_ecg", "ECG", "SimCLR", ("simclr", "ecg"), "simclr_ecg"),
    Method("simclr_cmr", "CMR", "SimCLR", ("simclr", "cmr"), "simclr_cmr"),
    # Random init: a seeded random encoder with the architecture of the run it `needs`, probed
    # like it (`ptacl evaluate --model none --like RUN`); ECG, and CMR beside the CMR MAE's LP.
    Method("random", "ECG", "random init", None, None, needs=("ecg_mae",),
           brings=("random_cmr",)),
    Method("random_cmr", "CMR", "random init", None, None, needs=("cmr_mae",)),
    Method("sup_ecg", "ECG", "supervised", ("finetune", "--model", "none"), "finetune",
           evaluate=False),
    Method("sup_cmr", "CMR", "supervised", ("finetune", "--modality", "cmr", "--model", "none"),
           "finetune", evaluate=False),
    Method("global", "ECG", "Global only", ("align",), "ptacl", ("loss.beta=0",),
           needs=("ecg_mae", "cmr_mae"), brings=("global_retrieval",)),
    Method("ptacl", "ECG", "PTACL", ("align",), "ptacl", needs=("ecg_mae", "cmr_mae"),
           finetune=True, brings=("ptacl_retrieval",)),
    Method("global_retrieval", "ECG", "Global only", ("align",), "ptacl",
           ("loss.beta=0", *RETRIEVAL_SETTING), needs=("ecg_mae", "cmr_mae"),
           setting="retrieval"),
    Method("ptacl_retrieval", "ECG", "PTACL", ("align",), "ptacl", RETRIEVAL_SETTING,
           needs=("ecg_mae", "cmr_mae"), setting="retrieval"),
    # No stage 1: random encoders, trained whole (freezing blocks would keep them random).
    Method("ptacl_nosmp", "ECG", "PTACL without SMP", ("align",), "ptacl", ("freeze_blocks=0",)),
    # CosSim++ pulls step k towards step k only (hard alignment), whatever the preset's σ.
    Method("ptacl_cossim", "ECG", "PTACL with CosSim++ local loss", ("align",), "ptacl",
           ("loss.local_loss=cosine", "loss.sigma=0"), needs=("ecg_mae", "cmr_mae")),
)  # fmt: skip

METHOD_KEYS = tuple(m.key for m in METHODS)

#: the stage-1 runs that stage 2 starts from (shared by every seed with `Preset.shared_stage1`)
STAGE1 = ("ecg_mae", "cmr_mae")


def select_methods(
    keys: Sequence[str] | None, *, bring_retrieval: bool = True
) -> tuple[Method, ...]:
    """The methods named in `keys` (all when None) plus the ones they start from or bring (`global`
    and `ptacl` bring their retrieval-setting runs, so Table 1 has them), in METHODS order.
    `bring_retrieval=False` leaves out the retrieval-setting runs that are brought, not named: a
    Table-2-and-endpoints run that saves one stage-2 training per seed and named method."""
    if keys is None:
        return METHODS
    unknown = set(keys) - set(METHOD_KEYS)
    if unknown:
        raise ValueError(f"unknown method(s) {sorted(unknown)}; choose from {list(METHOD_KEYS)}")
    by_key = {m.key: m for m in METHODS}
    wanted, todo = set(), list(keys)
    while todo:  # to a fixed point: a brought method has needs of its own
        key = todo.pop()
        if key not in wanted:
            wanted.add(key)
            brought = [k for k in by_key[key].brings
                       if bring_retrieval or by_key[k].setting != "retrieval"]  # fmt: skip
            todo += [*by_key[key].needs, *brought]
    return tuple(m for m in METHODS if m.key in wanted)
