import pytest
import torch

from ptacl.threads import read_share, shares, write_share
from ptacl.training.callbacks import ThreadShare


@pytest.mark.parametrize(
    ("jobs", "cores", "expected"),
    [(1, 2, [2]), (2, 2, [1, 1]), (3, 2, [1, 1, 1]), (2, 5, [3, 2]), (4, 16, [4, 4, 4, 4])],
)
def test_cores_are_shared_out_evenly_the_oldest_taking_the_remainder(jobs, cores, expected):
    assert shares(jobs, cores) == expected
    assert sum(shares(jobs, cores)) == max(jobs, cores)


def test_a_share_file_reads_back_and_a_bad_one_reads_as_none(tmp_path):
    path = tmp_path / "share"
    assert read_share(path) is None  # not written yet
    write_share(path, 3)
    assert read_share(path) == 3
    assert [p.name for p in tmp_path.iterdir()] == ["share"]  # no temporary file left
    for text in ("", "zero", "0", "-2"):
        path.write_text(text)
        assert read_share(path) is None


def test_a_training_run_follows_its_share_between_steps(tmp_path):
    before = torch.get_num_threads()
    path = tmp_path / "share"
    callback = ThreadShare(path)
    try:
        write_share(path, 1)
        callback.on_train_batch_start()
        assert torch.get_num_threads() == 1
        write_share(path, 2)
        callback.on_train_batch_start()
        assert torch.get_num_threads() == 2
        path.unlink()  # the pipeline went away: keep what it said last
        callback.on_train_batch_start()
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
