"""Parts that several document layouts share: margins, letterheads, address blocks, field lists, body text.

Sharing the parts is deliberate: real letters and memos, forms and questionnaires, reports and papers differ in
a few cues, not in everything, and the synthetic set should keep them that confusable.
"""

from __future__ import annotations

from dataclasses import dataclass

from .drawing import Page


@dataclass(frozen=True)
class Frame:
    """The printable area of a page and its body-text metrics (page units)."""

    left: float
    right: float
    top: float
    bottom: float
    text_h: float
    leading: float

    @property
    def width(self) -> float:
        return self.right - self.left


def frame(
    page: Page, margin: tuple[float, float] = (0.07, 0.15), text_h: tuple[float, float] = (0.007, 0.012)
) -> Frame:
    """Random margins and body-text size, as pages from different typewriters and printers have."""
    return Frame(
        left=page.uniform(*margin),
        right=1.0 - page.uniform(*margin),
        top=page.uniform(0.04, 0.10),
        bottom=1.0 - page.uniform(0.04, 0.09),
        text_h=page.uniform(*text_h),
        leading=page.uniform(1.6, 2.3),
    )


def body(
    page: Page,
    f: Frame,
    y: float,
    y_end: float,
    paragraphs: tuple[int, int] = (2, 5),
    lines: tuple[int, int] = (2, 7),
    x0: float | None = None,
    x1: float | None = None,
    indent: bool | None = None,
) -> float:
    """Paragraphs of body text from ``y`` until ``y_end`` or the paragraph count; returns the y reached."""
    x0 = f.left if x0 is None else x0
    x1 = f.right if x1 is None else x1
    indent = page.chance(0.4) if indent is None else indent
    for _ in range(page.integer(*paragraphs)):
        n = page.integer(*lines)
        n = min(n, int((y_end - y) / (f.text_h * f.leading)))
        if n <= 0:
            break
        y = page.paragraph(x0, x1, y, n, f.text_h, f.leading, indent=0.04 if indent else 0.0)
        y += f.text_h * f.leading * page.uniform(0.6, 1.4)
    return y


def letterhead(page: Page, f: Frame, y: float) -> float:
    """Company logo and name (left, centred or right), sometimes a rule under it; returns the y below."""
    align = page.integer(0, 2)
    s = page.uniform(0.05, 0.09)
    name_h = page.uniform(0.014, 0.024)
    name_w = page.uniform(0.2, 0.4)
    if align == 0:
        lx, nx = f.left, f.left + s + 0.02
    elif align == 1:
        lx, nx = 0.5 - s / 2, 0.5 - name_w / 2
    else:
        lx, nx = f.right - s, f.right - s - 0.02 - name_w
    if page.chance(0.8):
        page.logo(lx, y, s)
    ny = y + s + 0.01 if align == 1 else y + s * 0.3
    page.label(
        nx,
        ny,
        page.rng.choice(["ACME Corp", "Tobacco Institute", "R&D Division", "Lorillard"]),
        name_h,
        bold=True,
        max_x=nx + name_w,
    )
    for i in range(page.integer(0, 2)):
        page.words(nx, nx + name_w * 0.8, ny + name_h * 1.6 + i * 0.014, f.text_h * 0.7)
    y_end = y + s + (0.045 if align == 1 else 0.02)
    if page.chance(0.5):
        page.hrule(f.left, f.right, y_end, page.uniform(0.001, 0.004))
        y_end += 0.015
    return y_end


def address_block(page: Page, f: Frame, x: float, y: float, lines: int | None = None) -> float:
    """A few short left-aligned lines (recipient or sender address); returns the y below."""
    lines = page.integer(3, 5) if lines is None else lines
    step = f.text_h * f.leading
    for i in range(lines):
        page.words(x, x + page.uniform(0.12, 0.3), y + i * step, f.text_h)
    return y + lines * step


def field_list(
    page: Page, f: Frame, y: float, names: list[str], value_w: tuple[float, float] = (0.15, 0.45), label_w: float = 0.1
) -> float:
    """``Label:  value`` rows (memo and e-mail headers, form-like blocks); returns the y below."""
    step = f.text_h * f.leading * page.uniform(1.0, 1.5)
    for i, name in enumerate(names):
        yy = y + i * step
        page.label(f.left, yy, name, f.text_h, bold=True)
        page.words(f.left + label_w, f.left + label_w + page.uniform(*value_w), yy, f.text_h)
    return y + len(names) * step


def signature(page: Page, f: Frame, x: float, y: float) -> float:
    """Closing line, a handwritten signature, the typed name under it; returns the y below."""
    page.words(x, x + page.uniform(0.06, 0.14), y, f.text_h)
    y += f.text_h * f.leading * 1.5
    if page.chance(0.85):
        page.scribble(
            x, x + page.uniform(0.12, 0.25), y + 0.015, page.uniform(0.015, 0.03), width=page.uniform(0.002, 0.004)
        )
    y += 0.045
    page.words(x, x + page.uniform(0.1, 0.2), y, f.text_h)
    return y + f.text_h * f.leading


def heading(page: Page, f: Frame, x: float, y: float, scale: float = 1.5, max_x: float | None = None) -> float:
    """A bold section heading (sometimes numbered); returns the y below."""
    h = f.text_h * scale
    text = " ".join(
        page.rng.choice(
            ["Introduction", "Methods", "Results", "Discussion", "Summary", "Background", "Scope", "Conclusions"],
            size=1,
        )
    )
    if page.chance(0.5):
        text = f"{page.integer(1, 9)}. {text}"
    page.label(x, y, text, h, bold=True, max_x=max_x)
    return y + h * 2.0


def table(
    page: Page,
    x0: float,
    x1: float,
    y: float,
    rows: int,
    cols: int,
    row_h: float,
    grid: bool = True,
    header: bool = True,
    numeric_from: int = 1,
    text_h: float = 0.008,
) -> float:
    """A ruled table of short entries, numbers right-aligned from column ``numeric_from``; returns the y below."""
    col_w = (x1 - x0) / cols
    if grid:
        page.rect(x0, y, x1, y + rows * row_h, outline=page.ink, width=0.0015)
        for c in range(1, cols):
            page.vrule(x0 + c * col_w, y, y + rows * row_h, 0.0015)
    for r in range(rows):
        yy = y + r * row_h
        if grid and r:
            page.hrule(x0, x1, yy, 0.001)
        if header and r == 0:
            page.bar(x0, x1, yy, row_h, 0.25)
        for c in range(cols):
            w = col_w * page.uniform(0.3, 0.75)
            cx0 = x0 + c * col_w + col_w * 0.08
            if c >= numeric_from:
                cx0 = x0 + (c + 1) * col_w - col_w * 0.08 - w
            page.bar(cx0, cx0 + w, yy + (row_h - text_h) / 2, text_h, 0.6)
    return y + rows * row_h


def clutter(page: Page) -> None:
    """Marks that any scanned page may carry, whatever its class: fax header, page number, stamp, note, holes.

    They carry no class information, so a model cannot use them as a shortcut; they only add variety.
    """
    if page.chance(0.15):  # fax transmission header across the very top
        page.words(0.03, page.uniform(0.5, 0.97), page.uniform(0.005, 0.02), 0.006, coverage=0.7)
    if page.chance(0.25):  # page number or Bates number at the bottom
        x = page.uniform(0.45, 0.85)
        page.words(x, x + page.uniform(0.03, 0.12), page.uniform(0.95, 0.975), 0.007)
    if page.chance(0.08):  # rubber stamp
        x, y = page.uniform(0.5, 0.75), page.uniform(0.05, 0.8)
        page.rect(x, y, x + 0.2, y + 0.06, outline=page.integer(30, 120), width=0.005)
        page.words(x + 0.02, x + 0.18, y + 0.022, 0.015, coverage=0.7)
    if page.chance(0.1):  # handwritten margin note
        x, y = page.uniform(0.05, 0.7), page.uniform(0.1, 0.9)
        page.scribble(x, x + page.uniform(0.1, 0.25), y, page.uniform(0.015, 0.03), width=0.004)
    if page.chance(0.06):  # punched holes
        for y in (0.25, 0.75):
            r = 0.018
            page.draw.ellipse((page.px(0.03 - r), page.px(y - r), page.px(0.03 + r), page.px(y + r)), fill=40)
