"""The model card says where the training data came from, and what that means for the weights."""

from ptacl.data.prepare import ORIGIN_SYNTHETIC, ORIGIN_UKB, ORIGIN_UNKNOWN
from ptacl.inference.card import model_card
from ptacl.inference.export import phenotypes_spec, preprocessing_spec

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
