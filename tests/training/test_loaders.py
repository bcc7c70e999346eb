"""`StageData.usable`: the check every stage's `fit` runs before it builds a Trainer."""

from __future__ import annotations

import pytest

from ptacl.config import ConfigError
from ptacl.training.loaders import DataConfig, StageData


def test_an_empty_val_split_is_one_line_and_not_usable(capsys):
    data = StageData(list(range(8)), [], DataConfig(store="s", batch_size=4))
    assert data.usable("ptacl pretrain", "/data/s", "ecg") is False
    assert capsys.readouterr().err == "ptacl pretrain: /data/s: no ecg in the val split\n"


def test_a_batch_larger_than_the_train_split_is_refused_and_a_fitting_one_is_usable(capsys):
    small = StageData(list(range(3)), [0], DataConfig(store="s", batch_size=4))
    with pytest.raises(ConfigError, match=r"3 training items, fewer than data\.batch_size 4"):
        small.usable("ptacl align", "s", "paired subjects")
    fits = StageData(list(range(4)), [0], DataConfig(store="s", batch_size=4))
    assert fits.usable("ptacl align", "s", "paired subjects") is True
    assert capsys.readouterr().err == ""
