import pytest

from ptacl.data.preview import save_augmentation_preview


def test_preview_png_is_written(small_store, tmp_path):
    out = save_augmentation_preview(small_store, tmp_path / "p" / "preview.png", views=2)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_preview_needs_a_paired_subject(small_store, tmp_path):
    with pytest.raises(ValueError, match="no paired subject in split 'test'"):
        save_augmentation_preview(small_store, tmp_path / "x.png", split="test")
