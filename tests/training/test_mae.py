import pytest
import torch

from ptacl.config import to_dict
from ptacl.models import CmrEncoderConfig, EcgEncoderConfig, MaeConfig
from ptacl.training.figures import plot_cmr_reconstruction, plot_ecg_reconstruction
from ptacl.training.mae import (
    MaePretraining,
    MaeRunConfig,
)
from ptacl.training.parts import parameter_counts

pytestmark = pytest.mark.usefixtures("one_thread")


def _module(modality):
    torch.manual_seed(0)
    if modality == "ecg":
        cfg = MaeRunConfig(encoder=EcgEncoderConfig(samples=500, width=16, depth=1, heads=2))
        return MaePretraining(to_dict(cfg)), torch.randn(2, 12, 500)
    cfg = MaeRunConfig(modality="cmr", encoder=CmrEncoderConfig(width=16, depth=1, heads=2))
    return MaePretraining(to_dict(cfg)), torch.rand(2, 1, 26, 84, 84)


def test_hyperparameters_are_plain_values():
    module, _ = _module("ecg")
    config = module.hparams["config"]
    assert isinstance(config, dict) and config["mae"]["mask_ratio"] == 0.75

    def plain(v):
        if isinstance(v, dict):
            return all(plain(x) for x in v.values())
        if isinstance(v, list):
            return all(plain(x) for x in v)
        return v is None or isinstance(v, str | int | float | bool)

    assert plain(config)  # nothing that would need unpickling


def test_default_parameter_counts_within_ten_percent_of_the_paper(capsys):
    ecg = parameter_counts(MaePretraining(to_dict(MaeRunConfig())))
    cmr = parameter_counts(MaePretraining(to_dict(MaeRunConfig(modality="cmr"))))
    print(f"ECG MAE {ecg}\nCMR MAE {cmr}")
    assert abs(ecg["total"] / 19e6 - 1) < 0.1
    assert abs(cmr["cmr_encoder"] / 13e6 - 1) < 0.1 and abs(cmr["total"] / 13e6 - 1) < 0.1


def test_validation_masks_are_fixed_so_losses_compare():
    module, x = _module("ecg")
    module.log = lambda *a, **k: None  # outside a Trainer
    module.validation_step({"ecg": x}, 0)
    first = module.example["mask"].clone()
    module.validation_step({"ecg": x}, 0)
    assert torch.equal(first, module.example["mask"])
    assert first.sum() == round(0.75 * 120)


def test_figures_draw_from_one_validation_example(tmp_path):
    for modality in ("ecg", "cmr"):
        module, x = _module(modality)
        module.log = lambda *a, **k: None
        module.validation_step({modality: x}, 0)
        if modality == "ecg":
            fig = plot_ecg_reconstruction(module.example, module.mae.encoder.grid)
        else:
            fig = plot_cmr_reconstruction(module.example)
        fig.savefig(tmp_path / f"{modality}.png")
        assert (tmp_path / f"{modality}.png").stat().st_size > 1000


def test_norm_target_reconstruction_returns_input_units():
    cfg = MaeRunConfig(
        encoder=EcgEncoderConfig(samples=500, width=16, depth=1, heads=2),
        mae=MaeConfig(mask_ratio=0.75, decoder_width=8, decoder_heads=2, norm_target=True),
    )
    module = MaePretraining(to_dict(cfg))
    x = torch.randn(1, 12, 500) * 3 + 5
    patches = module.mae.encoder.patchify(x)
    perfect = module.mae.targets(x)  # a perfect prediction of the normalised target
    mask = torch.ones(1, 120)
    pictures = module.mae.reconstruct(x, perfect, mask)
    assert torch.allclose(module.mae.encoder.patchify(pictures["prediction"]), patches, atol=1e-3)


def test_reconstruction_figure_says_when_the_mae_still_predicts_the_mean(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from matplotlib.figure import Figure

    from ptacl.training.figures import MEAN_PLATEAU_RATIO, ReconstructionFigure, mean_plateau_note

    assert "mean:" in mean_plateau_note(0.97, 1.0) and mean_plateau_note(0.5, 1.0) is None
    assert "(or worse)" in mean_plateau_note(1.7, 1.0)
    assert mean_plateau_note(None, 1.0) is None and mean_plateau_note(1.0, 0.0) is None
    assert mean_plateau_note(MEAN_PLATEAU_RATIO, 1.0) is None  # at the limit: not flagged
    module, x = _module("ecg")
    module.log = lambda *a, **k: None
    module.validation_step({"ecg": x}, 0)
    titles = []
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: titles.append(fig._suptitle))
    for loss, flagged in ((0.98, True), (0.45, False)):
        trainer = SimpleNamespace(
            sanity_checking=False,
            is_global_zero=True,
            global_step=250,
            callback_metrics={
                "val/loss": torch.tensor(loss),
                "val/mean_baseline": torch.tensor(1.0),
            },
        )
        ReconstructionFigure(tmp_path).on_validation_epoch_end(trainer, module)
        title = titles[-1]
        assert ("still predicting the mean" in title.get_text()) == flagged
        assert (title.get_color() == "tab:red") == flagged


def test_a_reconstruction_figure_title_fits_the_figure():
    """The plateau note (120 characters) over a CMR figure of a few frames was clipped at both
    ends; wrapped, every line of the title lies inside the figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from ptacl.training.figures import mean_plateau_note, title_figure

    for modality in ("ecg", "cmr"):
        module, x = _module(modality)
        module.log = lambda *a, **k: None
        module.validation_step({modality: x}, 0)
        if modality == "ecg":
            fig = plot_ecg_reconstruction(module.example, module.mae.encoder.grid)
        else:
            fig = plot_cmr_reconstruction(module.example)
        title_figure(fig, f"{modality.upper()} MAE, step 250, val loss 1.7000",
                     mean_plateau_note(1.7, 1.0))  # fmt: skip
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        box = fig._suptitle.get_window_extent(canvas.get_renderer())
        assert box.x0 >= 0 and box.x1 <= fig.bbox.width, (modality, box, fig.bbox)
        assert box.y1 <= fig.bbox.height
