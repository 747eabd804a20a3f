"""Render a labelled grid of synthetic documents (one row per class) to a PNG, so a person can look at the data.

    python -m traenslenzor.doc_classifier.data.preview          # writes .logs/data_preview.png

The committed docs/images/data_preview.png was made with
    --out docs/images/data_preview.png --image-size 128 --per-class 6 --gray-bits 5
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from PIL import Image, ImageDraw, ImageOps

from .classes import NUM_CLASSES, RVL_CDIP_CLASSES
from .synthetic import render_sample
from .synthetic.drawing import font

logger = logging.getLogger(__name__)

# Beside the run logs (git ignores .logs/), never over the committed docs/images/data_preview.png.
DEFAULT_OUT = Path(".logs/data_preview.png")

_LABEL_WIDTH = 230
_GAP = 4


def preview_grid(
    image_size: int = 128, per_class: int = 6, seed: int = 0, split: str = "train", artefact_strength: float = 1.0
) -> Image.Image:
    """A grid image: row ``c`` shows the first ``per_class`` pages of class ``c`` in ``split``."""
    if per_class < 1:
        raise ValueError(f"per_class must be at least 1, got {per_class}")
    cell = image_size + _GAP
    grid = Image.new("L", (_LABEL_WIDTH + per_class * cell, NUM_CLASSES * cell), 200)
    draw = ImageDraw.Draw(grid)
    fnt = font(max(11, min(18, image_size // 6)))
    for label, name in enumerate(RVL_CDIP_CLASSES):
        y = label * cell
        draw.text((8, y + image_size // 2 - 8), f"{label:2d} {name}", fill=0, font=fnt)
        for k in range(per_class):
            page, _ = render_sample(seed, split, label + k * NUM_CLASSES, image_size, artefact_strength)
            grid.paste(Image.fromarray(page, "L"), (_LABEL_WIDTH + k * cell, y))
    return grid


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"PNG to write (default: {DEFAULT_OUT})")
    parser.add_argument("--image-size", type=int, default=128, help="side of each page in pixels")
    parser.add_argument("--per-class", type=int, default=6, help="pages shown per class (columns)")
    parser.add_argument("--seed", type=int, default=0, help="rendering seed")
    parser.add_argument("--split", choices=("train", "val", "test"), default="train")
    parser.add_argument("--artefact-strength", type=float, default=1.0, help="0 = clean renders")
    parser.add_argument(
        "--gray-bits",
        type=int,
        default=8,
        choices=range(1, 9),
        metavar="1..8",
        help="bits per gray level in the PNG; scan noise does not compress, and 5 bits "
        "(32 levels) looks the same at about half the file size",
    )
    args = parser.parse_args(argv)
    if args.image_size < 8:
        parser.error(f"--image-size must be at least 8, got {args.image_size}")
    grid = preview_grid(args.image_size, args.per_class, args.seed, args.split, args.artefact_strength)
    if args.gray_bits < 8:
        grid = ImageOps.posterize(grid, args.gray_bits)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    grid.save(args.out, optimize=True)
    logger.info("Preview of %d classes x %d pages saved to: %s", NUM_CLASSES, args.per_class, args.out)
    return args.out


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main()
