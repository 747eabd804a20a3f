"""Drawing primitives for synthetic pages, in page coordinates (0..1 on both axes) at the output resolution.

Layouts (``layouts_*.py``) describe a page as text lines, boxes, tables and strokes; ``Page`` turns each into a
few Pillow calls on a canvas of about the output size. Lines thinner than a pixel are drawn one pixel high in a
lighter gray (their area coverage), which is what downsampling a full-size scan would give, at a fraction of
the cost. Text is drawn as word-shaped bars, or as real words in Pillow's default font when big enough to read.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

PAPER = 255
INK = 20

# Real words for titles and labels. Kept short and shared between classes where real documents share them.
WORDS = (
    "the",
    "of",
    "and",
    "to",
    "in",
    "for",
    "on",
    "with",
    "by",
    "report",
    "data",
    "total",
    "date",
    "page",
    "name",
    "results",
    "section",
    "project",
    "company",
    "account",
    "review",
    "market",
    "product",
    "service",
    "office",
    "plan",
    "policy",
    "system",
    "research",
    "sales",
)


@lru_cache(maxsize=64)
def font(size_px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled default font at ``size_px`` (cached: loading costs ~1 ms)."""
    return ImageFont.load_default(size=max(4, size_px))


class Page:
    """A grayscale canvas addressed in page fractions, with a random generator for jitter."""

    def __init__(self, size: int, rng: np.random.Generator, ink: int = INK) -> None:
        self.size = size
        self.rng = rng
        self.ink = ink
        self.image = Image.new("L", (size, size), PAPER)
        self.draw = ImageDraw.Draw(self.image)

    # --- coordinates ---------------------------------------------------------------------------------------
    def px(self, v: float) -> int:
        return round(v * self.size)

    def shade(self, coverage: float, ink: int | None = None) -> int:
        """Gray level of a pixel that is ``coverage`` (0..1) covered by ink."""
        ink = self.ink if ink is None else ink
        c = min(max(coverage, 0.0), 1.0)
        return round(PAPER - c * (PAPER - ink))

    def uniform(self, lo: float, hi: float) -> float:
        return float(self.rng.uniform(lo, hi))

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def integer(self, lo: int, hi: int) -> int:
        """Random integer in [lo, hi] (both ends included)."""
        return int(self.rng.integers(lo, hi + 1))

    # --- filled shapes -------------------------------------------------------------------------------------
    def bar(self, x0: float, x1: float, y: float, h: float, coverage: float = 1.0, ink: int | None = None) -> None:
        """A horizontal band of height ``h`` (page units); sub-pixel heights become a lighter 1-pixel line."""
        hp = h * self.size
        X0, X1, Y = self.px(x0), self.px(x1), int(y * self.size)
        if X1 <= X0:
            return
        if hp < 1.0:
            self.draw.rectangle((X0, Y, X1 - 1, Y), fill=self.shade(coverage * hp, ink))
        else:
            self.draw.rectangle((X0, Y, X1 - 1, Y + round(hp) - 1), fill=self.shade(coverage, ink))

    def rect(
        self,
        x0: float,
        y0: float,
        x1: float,
        y1: float,
        fill: int | None = None,
        outline: int | None = None,
        width: float = 0.003,
    ) -> None:
        """Rectangle; outline width in page units (at least one pixel)."""
        w = max(1, round(width * self.size))
        self.draw.rectangle(
            (self.px(x0), self.px(y0), self.px(x1), self.px(y1)),
            fill=fill,
            outline=outline,
            width=w if outline is not None else 0,
        )

    def hrule(self, x0: float, x1: float, y: float, width: float = 0.002, ink: int | None = None) -> None:
        self.bar(x0, x1, y, width, 1.0, ink)

    def vrule(self, x: float, y0: float, y1: float, width: float = 0.002, ink: int | None = None) -> None:
        wp = width * self.size
        X = int(x * self.size)
        fill = self.shade(min(wp, 1.0), ink)
        self.draw.rectangle((X, self.px(y0), X + max(0, round(wp) - 1), self.px(y1)), fill=fill)

    def checkbox(self, x: float, y: float, s: float, ticked: bool = False) -> None:
        self.rect(x, y, x + s, y + s, outline=self.ink, width=0.002)
        if ticked:
            X, Y, S = self.px(x), self.px(y), max(2, self.px(s))
            self.draw.line((X, Y, X + S, Y + S), fill=self.ink, width=max(1, S // 5))
            self.draw.line((X + S, Y, X, Y + S), fill=self.ink, width=max(1, S // 5))

    def photo(self, x0: float, y0: float, x1: float, y1: float) -> None:
        """A halftone-photo stand-in: a smooth random gradient with a few blobs, mid to dark gray."""
        X0, Y0, X1, Y1 = self.px(x0), self.px(y0), self.px(x1), self.px(y1)
        w, h = X1 - X0, Y1 - Y0
        if w < 2 or h < 2:
            return
        coarse = self.rng.uniform(40, 220, size=(3, 3)).astype(np.uint8)
        block = Image.fromarray(coarse, "L").resize((w, h), Image.BILINEAR)
        self.image.paste(block, (X0, Y0))
        for _ in range(self.integer(1, 3)):
            cx, cy = self.uniform(x0, x1), self.uniform(y0, y1)
            r = self.uniform(0.1, 0.35) * min(x1 - x0, y1 - y0)
            self.draw.ellipse(
                (self.px(cx - r), self.px(cy - r), self.px(cx + r), self.px(cy + r)), fill=self.integer(10, 240)
            )

    def logo(self, x0: float, y0: float, s: float) -> None:
        """A small company mark: a filled disc, square or triangle."""
        X0, Y0, S = self.px(x0), self.px(y0), max(2, self.px(s))
        kind = self.integer(0, 2)
        fill = self.integer(10, 120)
        if kind == 0:
            self.draw.ellipse((X0, Y0, X0 + S, Y0 + S), fill=fill)
        elif kind == 1:
            self.draw.rectangle((X0, Y0, X0 + S, Y0 + S), fill=fill)
        else:
            self.draw.polygon([(X0, Y0 + S), (X0 + S // 2, Y0), (X0 + S, Y0 + S)], fill=fill)

    # --- text ----------------------------------------------------------------------------------------------
    def words(
        self,
        x0: float,
        x1: float,
        y: float,
        h: float,
        coverage: float = 0.55,
        ink: int | None = None,
        word_len: float = 0.045,
    ) -> None:
        """One line of text as word-shaped bars between ``x0`` and ``x1`` (page units)."""
        gap = max(0.6 * h, 1.2 / self.size)
        x = x0
        while x < x1:
            w = word_len * self.uniform(0.35, 1.65)
            self.bar(x, min(x + w, x1), y, h, coverage, ink)
            x += w + gap

    def text_line(self, x0: float, x1: float, y: float, h: float, **kw: float) -> None:
        """A line of body text; real letters when the line is tall enough to read, bars otherwise."""
        if h * self.size >= 7 and x1 - x0 > 0.05:
            self.label(x0, y, " ".join(self.rng.choice(WORDS, size=24)), h, max_x=x1)
        else:
            self.words(x0, x1, y, h, **kw)

    def paragraph(
        self,
        x0: float,
        x1: float,
        y: float,
        lines: int,
        h: float,
        leading: float = 1.9,
        ragged: bool = True,
        indent: float = 0.0,
    ) -> float:
        """``lines`` text lines starting at ``y``; returns the y just below the paragraph."""
        for i in range(lines):
            start = x0 + (indent if i == 0 else 0.0)
            end = x1 if (i < lines - 1) else x0 + (x1 - x0) * self.uniform(0.2, 0.85)
            if ragged and i < lines - 1:
                end -= self.uniform(0.0, 0.06)
            self.text_line(start, end, y + i * h * leading, h)
        return y + lines * h * leading

    def label(
        self,
        x: float,
        y: float,
        text: str,
        h: float,
        ink: int | None = None,
        max_x: float | None = None,
        bold: bool = False,
    ) -> None:
        """Real text in Pillow's default font, ``h`` page units tall; bars when too small to read."""
        hp = h * self.size
        if hp < 5:
            width = 0.55 * h * len(text)
            end = x + width if max_x is None else min(x + width, max_x)
            self.bar(x, end, y, h, 0.85 if bold else 0.6, ink)
            return
        fnt = font(round(hp * 1.25))
        fill = self.ink if ink is None else ink
        if max_x is not None:
            limit = self.px(max_x) - self.px(x)
            while text and fnt.getlength(text) > limit:
                text = text[: max(0, int(len(text) * limit / max(1.0, fnt.getlength(text))) - 1)]
        stroke = 1 if bold and hp >= 9 else 0
        self.draw.text(
            (self.px(x), self.px(y) - int(hp * 0.2)), text, fill=fill, font=fnt, stroke_width=stroke, stroke_fill=fill
        )

    def scribble(
        self, x0: float, x1: float, y: float, h: float, slant: float = 0.3, width: float = 0.003, ink: int | None = None
    ) -> None:
        """Cursive-like handwriting: an irregular looping polyline along a wandering baseline."""
        n = max(6, int((x1 - x0) * self.size / 2.5))
        xs = np.linspace(x0, x1, n) + self.rng.normal(0, h * 0.15, n)
        phase = np.cumsum(self.rng.uniform(0.6, 1.6, n))
        drift = np.cumsum(self.rng.normal(0, h * 0.08, n))
        ys = y + h * 0.5 * np.sin(phase * 2.2) + drift
        xs = xs + slant * (y - ys)
        pts = [(float(a * self.size), float(b * self.size)) for a, b in zip(xs, ys, strict=True)]
        self.draw.line(pts, fill=self.ink if ink is None else ink, width=max(1, self.px(width)), joint="curve")
