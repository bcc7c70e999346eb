"""The model card says where the training data came from, and what that means for the weights."""

from ptacl.data.discover import ORIGIN_SYNTHETIC, ORIGIN_UKB, ORIGIN_UNKNOWN
from ptacl.export.card import model_card
from ptacl.export.write import phenotypes_spec, preprocessing_spec

CONFIG = {
    "model": "ptacl ECG encoder with a phenotype head",
    "ptacl_version": "0.1.0",
    "source": {"run": "ptacl_run", "stage": "align", "checkpoint": "best.ckpt"},
    "encoder": {"kind": "ecg_encoder", "kwargs": {"width": 16, "depth": 1}},
    "head": {"kind": "linear", "method": "OLS", "validation_r2": {"LVEDV (mL)": 0.31}},
    "embedding": {"dim": 16, "encoder_id": "ab" * 32},
}


def _card(origin):
    data = {"store": "store", "origin": origin, "evidence": "test", "subjects": 10}
    return model_card(CONFIG, phenotypes_spec(), preprocessing_spec(2500), data=data)


def test_the_card_follows_the_data_origin():
    synthetic, ukb, unknown = (_card(o) for o in (ORIGIN_SYNTHETIC, ORIGIN_UKB, ORIGIN_UNKNOWN))
    assert "license: apache-2.0" in synthetic and "no participant data went in" in synthetic
    for card in (ukb, unknown):
        assert "license: other" in card and "not licensed for redistribution" in card
        assert "derived individual-level data" in card and "approval" in card
    assert "origin of the training data was not recorded" in unknown
    assert "Origin: **UK Biobank**" in ukb
    for card in (synthetic, ukb, unknown):  # Hugging Face card sections, research use only
        for section in ("## Model details", "## Training data", "## Training procedure",
                        "## Evaluation", "## Uses", "## Limitations", "## Governance",
                        "## Licence"):  # fmt: skip
            assert section in card
        assert "not a medical device" in card and "| LVEDV (mL) | 0.310 |" in card
        assert "No test-set metrics were given" in card


def test_a_linear_probe_card_shows_its_own_head_and_whole_counts():
    """metrics.json from `ptacl evaluate --finetune` holds LP and FN+AP; a linear-probe bundle
    predicts with the LP only. Counts read back from JSON as floats print as whole numbers."""
    row = {"R2": 0.5, "n": 24.0, "ci": [0.4, 0.6]}
    metrics = {
        "info": {"split": "test", "data": "store"},
        "regression": {
            "LP (ols)": {"LVEDV (mL)": row},
            "FN+AP": {"LVEDV (mL)": {**row, "R2": 0.7}},
        },
    }
    data = {
        "store": "store",
        "origin": ORIGIN_SYNTHETIC,
        "subjects": 120.0,
        "splits": {"train": 84.0},
    }
    card = model_card(
        CONFIG, phenotypes_spec(), preprocessing_spec(2500), data=data, metrics=metrics,
        training={"command": "ptacl align --config run/config.yaml --out run_again"},
    )  # fmt: skip
    assert "| LVEDV (mL) | 0.500 | [0.400, 0.600] | 24 |" in card
    assert "0.700" not in card and "Left out: FN+AP" in card
    assert "120 subjects" in card and "train 84" in card and ".000 subjects" not in card
    assert "Reproduce: `ptacl align" in card and "not recorded" in card
