"""Preview command: a labelled grid, one row per class, written as PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from traenslenzor.doc_classifier.data.preview import main, preview_grid
from traenslenzor.doc_classifier.data.synthetic import render_sample


def test_preview_command_writes_one_row_per_class(tmp_path) -> None:
    out = main(["--out", str(tmp_path / "sub" / "grid.png"), "--image-size", "20", "--per-class", "3"])
    image = Image.open(out)
    label_width, cell = 230, 20 + 4
    assert image.size == (label_width + 3 * cell, 16 * cell)
    grid = np.asarray(image)
    # row 5, column 2 holds page 5 + 2*16 of the train split (class 5)
    np.testing.assert_array_equal(
        grid[5 * cell : 5 * cell + 20, label_width + 2 * cell : label_width + 2 * cell + 20],
        render_sample(0, "train", 5 + 2 * 16, 20)[0],
    )


def test_gray_bits_posterizes_the_png(tmp_path) -> None:
    out = main(["--out", str(tmp_path / "g.png"), "--image-size", "16", "--per-class", "1", "--gray-bits", "2"])
    assert set(np.unique(np.asarray(Image.open(out))).tolist()) <= {0, 64, 128, 192}


def test_preview_rejects_bad_sizes(tmp_path) -> None:
    with pytest.raises(ValueError, match="per_class must be at least 1"):
        preview_grid(image_size=16, per_class=0)
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "x.png"), "--image-size", "2"])


def test_preview_without_out_writes_under_logs_not_over_the_committed_image(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = main(["--image-size", "16", "--per-class", "1"])
    assert out == Path(".logs/data_preview.png")
    assert (tmp_path / ".logs/data_preview.png").read_bytes()[:4] == b"\x89PNG"
    assert not (tmp_path / "docs").exists()
