"""The whole path on a `ptacl synth` cohort: files -> `ptacl prepare` -> datasets, same values."""

import numpy as np
import pandas as pd
import pytest

from ptacl.cli.prepare import main as prepare
from ptacl.cmr import preprocess_cmr
from ptacl.data.augment_cmr import frame_indices
from ptacl.data.datasets import PairedDataset
from ptacl.data.store import Store
from ptacl.ecg import preprocess_ecg
from ptacl.io import read_cmr, read_ecg
from ptacl.phenotypes import PHENOTYPES
from ptacl.synth.cohort import generate_cohort


@pytest.fixture(scope="module")
def synth_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    generate_cohort(root / "cohort", 3, seed=11, progress=False)
    c = root / "cohort"
    argv = ["--ecg", str(c / "ecg"), "--cmr", str(c / "cmr"), "--phenotypes"]
    argv += [str(c / "phenotypes.csv"), "--out", str(root / "store"), "--quiet", "--val", "0"]
    assert prepare(argv) == 0
    return c, Store.open(root / "store")


def test_every_synthetic_subject_arrives_paired_with_its_values(synth_store):
    cohort, store = synth_store
    table = pd.read_csv(cohort / "phenotypes.csv", dtype={"eid": str}).set_index("eid")
    truth = pd.read_csv(cohort / "truth.csv", dtype={"eid": str}).set_index("eid")
    assert sorted(store.subjects["eid"]) == sorted(table.index)
    assert store.subjects["paired"].all() and (store.subjects["ecg_length"] == 5000).all()

    dataset = PairedDataset(store, None, train=False, ecg_augment=None, cmr_augment=None)
    for k in range(len(dataset)):
        item = dataset[k]
        eid = item["eid"]
        expected = table.loc[eid, list(PHENOTYPES)].to_numpy(dtype=np.float32)
        np.testing.assert_array_equal(item["phenotypes"].numpy(), expected)

        record = read_ecg(cohort / "ecg" / f"{eid}_20205_2_0.xml")
        ecg = preprocess_ecg(record.signal, record.fs)[:, :2500]
        np.testing.assert_allclose(item["ecg"].numpy(), ecg, atol=4e-3, rtol=1e-3)  # float16

        # R peaks within 10 ms (5 samples) of the generator's truth, every beat in the crop
        true_peaks = np.array([int(p) for p in truth.loc[eid, "r_peaks"].split()])
        true_peaks = true_peaks[true_peaks < 2500]
        peaks = item["r_peaks"].numpy()
        peaks = peaks[peaks >= 0]
        assert len(peaks) == len(true_peaks)
        assert np.abs(peaks - true_peaks).max() <= 5

        cine, _ = preprocess_cmr(read_cmr(cohort / "cmr" / eid / "sa.nii.gz"))
        np.testing.assert_allclose(
            item["cmr"][0].numpy(), cine[frame_indices(26)], atol=0.5 / 255 + 1e-6
        )
