"""Layouts of published and visual pages: advertisement, scientific report and publication, file folder,
news article, presentation.

Report and publication share headings, justified text, figures and tables; the publication's cues are its
centred title block, abstract and two columns, the report's a single column with a title page look, and each
sometimes takes the other's form (reports set in two columns, continuation pages of papers without a title).
"""

from __future__ import annotations

from .drawing import Page
from .layout_parts import Frame, body, frame, heading, letterhead, table


def _columns(
    page: Page,
    f: Frame,
    y: float,
    n: int,
    gutter: float,
    y_end: float | None = None,
    headings: bool = True,
    figure_p: float = 0.3,
) -> None:
    """``n`` columns of justified text with headings and figures, from ``y`` to the bottom margin."""
    y_end = f.bottom if y_end is None else y_end
    col_w = (f.width - gutter * (n - 1)) / n
    for c in range(n):
        x0 = f.left + c * (col_w + gutter)
        yy = y
        while yy < y_end - 0.03:
            if headings and page.chance(0.25):
                yy = heading(page, f, x0, yy + 0.01, scale=1.2, max_x=x0 + col_w)
            if page.chance(figure_p * 0.3):
                fh = page.uniform(0.08, 0.2)
                if yy + fh < y_end:
                    _figure(page, x0, yy, x0 + col_w, yy + fh)
                    yy += fh + 0.01
                    yy = page.paragraph(x0, x0 + col_w, yy, page.integer(1, 2), f.text_h * 0.85, f.leading)
            n_lines = min(page.integer(3, 10), int((y_end - yy) / (f.text_h * f.leading)))
            if n_lines <= 0:
                break
            yy = page.paragraph(x0, x0 + col_w, yy, n_lines, f.text_h, f.leading, ragged=False, indent=0.02) + f.text_h


def _figure(page: Page, x0: float, y0: float, x1: float, y1: float) -> None:
    """A plot (axes, curve or bars) or a photo."""
    kind = page.integer(0, 2)
    if kind == 0:
        page.photo(x0, y0, x1, y1)
        return
    page.vrule(x0 + 0.01, y0, y1, 0.002)
    page.hrule(x0 + 0.01, x1, y1, 0.002)
    n = page.integer(4, 10)
    for i in range(n):
        x = x0 + 0.02 + (x1 - x0 - 0.03) * i / n
        top = y1 - (y1 - y0) * page.uniform(0.1, 0.9)
        if kind == 1:
            page.rect(x, top, x + (x1 - x0) / n * 0.6, y1, fill=page.integer(30, 160))
        else:
            page.rect(x, top, x + 0.006, top + 0.006, fill=page.ink)


def advertisement(page: Page) -> None:
    dark = page.chance(0.3)
    if dark:
        page.rect(0, 0, 1, 1, fill=page.integer(20, 90))
    ink = 245 if dark else page.ink
    f = frame(page, margin=(0.04, 0.12))
    y = f.top
    for _ in range(page.integer(1, 2)):  # big headline
        h = page.uniform(0.035, 0.08)
        page.label(
            f.left + page.uniform(0, 0.1),
            y,
            str(page.rng.choice(["NEW!", "SALE", "Discover", "Taste the Difference", "FREE"])),
            h,
            ink=ink,
            bold=True,
            max_x=f.right,
        )
        y += h * 1.6
    ph = page.uniform(0.25, 0.5)
    x0 = f.left + page.uniform(0, 0.2)
    page.photo(x0, y, min(f.right, x0 + page.uniform(0.4, 0.8)), y + ph)
    y += ph + 0.03
    for _ in range(page.integer(1, 4)):
        w = page.uniform(0.3, 0.8) * f.width
        cx = 0.5 if page.chance(0.6) else f.left + w / 2
        page.words(cx - w / 2, cx + w / 2, y, f.text_h * page.uniform(1.0, 2.2), ink=ink)
        y += 0.035
    if page.chance(0.7):
        page.logo(f.right - 0.15, f.bottom - 0.12, page.uniform(0.08, 0.12))
    if page.chance(0.4):  # fine print at the bottom
        page.paragraph(f.left, f.right, f.bottom - 0.02, 1, 0.004, 1.8)
    if page.chance(0.4):
        page.rect(0.02, 0.02, 0.98, 0.98, outline=ink, width=page.uniform(0.004, 0.012))


def scientific_report(page: Page) -> None:
    f = frame(page)
    y = f.top
    if page.chance(0.3):
        y = letterhead(page, f, y)
    if page.chance(0.6):  # report title (left or centred), maybe a report number
        h = page.uniform(0.013, 0.022)
        page.label(
            f.left,
            y,
            str(page.rng.choice(["PROGRESS REPORT", "Technical Report", "Research Report", "ANNUAL REPORT"])),
            h,
            bold=True,
        )
        y += h * 2.2
        if page.chance(0.5):
            page.words(f.left, f.left + 0.3, y, f.text_h)
            y += 0.03
    if page.chance(0.35):  # set in two columns, like a paper
        _columns(page, f, y, 2, page.uniform(0.03, 0.05))
        return
    while y < f.bottom - 0.05:
        if page.chance(0.5):
            y = heading(page, f, f.left, y)
        if page.chance(0.2):
            fh = page.uniform(0.1, 0.25)
            if y + fh < f.bottom:
                if page.chance(0.5):
                    _figure(page, f.left + 0.1, y, f.right - 0.1, y + fh)
                    y += fh + 0.02
                else:
                    y = (
                        table(
                            page,
                            f.left + 0.05,
                            f.right - 0.05,
                            y,
                            page.integer(3, 8),
                            page.integer(3, 5),
                            f.text_h * 2.2,
                            grid=page.chance(0.5),
                            text_h=f.text_h,
                        )
                        + 0.02
                    )
        y = body(page, f, y, f.bottom, paragraphs=(1, 3), lines=(3, 9), indent=page.chance(0.5))
    page.words(0.48, 0.52, f.bottom + 0.02, f.text_h)  # page number


def scientific_publication(page: Page) -> None:
    f = frame(page, margin=(0.05, 0.1), text_h=(0.005, 0.009))
    y = f.top
    if page.chance(0.15):  # journal running head
        page.words(f.left, f.left + 0.3, y, f.text_h * 0.8)
        page.hrule(f.left, f.right, y + 0.015, 0.0015)
        y += 0.03
    if page.chance(0.6):  # first page: title, authors, abstract
        h = page.uniform(0.013, 0.022)
        for _ in range(page.integer(1, 2)):
            w = page.uniform(0.5, 0.8) * f.width
            page.words(0.5 - w / 2, 0.5 + w / 2, y, h, coverage=0.85)
            y += h * 1.8
        w = page.uniform(0.3, 0.6) * f.width
        page.words(0.5 - w / 2, 0.5 + w / 2, y, f.text_h)
        y += f.text_h * f.leading * 2
        if page.chance(0.7):
            page.label(0.5 - 0.04, y, "Abstract", f.text_h * 1.1, bold=True)
            y += f.text_h * 2.5
            y = (
                page.paragraph(f.left + 0.06, f.right - 0.06, y, page.integer(4, 9), f.text_h, f.leading, ragged=False)
                + 0.02
            )
    n = 2 if page.chance(0.8) else page.integer(1, 3)
    _columns(page, f, y, n, page.uniform(0.025, 0.045), figure_p=0.5)


def file_folder(page: Page) -> None:
    """A scanned folder cover: a large flat tone with a tab, edges, and a few labels, stamps or notes."""
    tone = page.integer(120, 230)
    edge = page.integer(30, 120)
    x0, x1 = page.uniform(-0.05, 0.08), 1.0 - page.uniform(-0.05, 0.08)
    y0 = page.uniform(0.05, 0.18)
    tab_x, tab_w = page.uniform(0.05, 0.6), page.uniform(0.2, 0.35)
    page.rect(tab_x, y0 - 0.05, tab_x + tab_w, y0 + 0.01, fill=tone, outline=edge, width=0.003)
    page.rect(x0, y0, x1, 1.02, fill=tone, outline=edge, width=0.004)
    if page.chance(0.35):  # the back panel showing along one side
        page.vrule(x1 - page.uniform(0.01, 0.04), y0, 1.0, 0.004, ink=edge)
    if page.chance(0.8):  # typed label or handwriting on the tab
        if page.chance(0.5):
            page.rect(tab_x + 0.01, y0 - 0.04, tab_x + tab_w - 0.01, y0 - 0.005, fill=245)
            page.words(tab_x + 0.02, tab_x + tab_w - 0.03, y0 - 0.03, 0.012)
        else:
            page.scribble(tab_x + 0.02, tab_x + tab_w - 0.03, y0 - 0.028, 0.012, width=0.003)
    for _ in range(page.integer(0, 3)):  # stickers, stamps and notes on the cover
        sx, sy = page.uniform(0.1, 0.6), page.uniform(y0 + 0.05, 0.85)
        kind = page.integer(0, 2)
        if kind == 0:
            page.rect(sx, sy, sx + 0.3, sy + 0.1, fill=250, outline=80, width=0.002)
            for i in range(page.integer(1, 3)):
                page.words(sx + 0.02, sx + 0.25, sy + 0.015 + i * 0.028, 0.01)
        elif kind == 1:
            page.rect(sx, sy, sx + 0.22, sy + 0.07, outline=page.integer(20, 90), width=0.006)
            page.words(sx + 0.02, sx + 0.2, sy + 0.025, 0.018, coverage=0.8, ink=page.integer(20, 90))
        else:
            page.scribble(sx, sx + page.uniform(0.15, 0.35), sy, 0.025, width=0.004)
    if page.chance(0.4):  # crease
        page.hrule(x0, x1, page.uniform(0.4, 0.9), 0.003, ink=max(0, tone - 40))


def news_article(page: Page) -> None:
    f = frame(page, margin=(0.03, 0.07), text_h=(0.005, 0.008))
    y = f.top
    if page.chance(0.5):  # masthead
        h = page.uniform(0.03, 0.05)
        page.label(0.5 - 0.25, y, str(page.rng.choice(["The Daily News", "THE TIMES", "Herald"])), h, bold=True)
        y += h * 1.5
        page.hrule(f.left, f.right, y, 0.004)
        y += 0.012
    h = page.uniform(0.018, 0.035)  # headline
    for _ in range(page.integer(1, 2)):
        page.words(f.left, f.left + f.width * page.uniform(0.5, 1.0), y, h, coverage=0.9, word_len=0.08)
        y += h * 1.5
    n = page.integer(3, 5)
    gutter = 0.015
    if page.chance(0.6):  # photo with caption spanning some columns
        span = page.integer(1, n - 1) * (f.width + gutter) / n - gutter
        ph = page.uniform(0.15, 0.3)
        page.photo(f.left, y, f.left + span, y + ph)
        page.words(f.left, f.left + span, y + ph + 0.008, f.text_h * 0.8)
        _columns(
            page,
            Frame(f.left + span + gutter, f.right, f.top, f.bottom, f.text_h, f.leading),
            y,
            max(1, n - int(span * n / f.width)),
            gutter,
            y_end=y + ph + 0.03,
            headings=False,
            figure_p=0,
        )
        y += ph + 0.04
    col_w = (f.width - gutter * (n - 1)) / n
    for c in range(1, n):
        page.vrule(f.left + c * (col_w + gutter) - gutter / 2, y, f.bottom, 0.001)
    _columns(page, f, y, n, gutter, headings=False, figure_p=0)


def presentation(page: Page) -> None:
    slides = 2 if page.chance(0.3) else 1
    boxed = page.chance(0.6)
    for s in range(slides):
        top = 0.05 + s * 0.47 if slides == 2 else page.uniform(0.05, 0.2)
        height = 0.42 if slides == 2 else page.uniform(0.55, 0.85)
        x0, x1 = page.uniform(0.05, 0.12), 1.0 - page.uniform(0.05, 0.12)
        if boxed:
            page.rect(x0, top, x1, top + height, outline=page.ink, width=0.004)
        if page.chance(0.4):  # title band
            page.rect(x0, top, x1, top + height * 0.16, fill=page.integer(40, 160))
        th = height * page.uniform(0.05, 0.08)
        page.label(
            x0 + 0.04,
            top + height * 0.05,
            str(page.rng.choice(["Overview", "Key Findings", "Market Share", "Objectives", "Next Steps"])),
            th,
            bold=True,
            max_x=x1 - 0.04,
        )
        y = top + height * 0.25
        bh = height * page.uniform(0.025, 0.04)
        if page.chance(0.3):  # a bar chart instead of bullets
            _figure(page, x0 + 0.1, y, x1 - 0.1, top + height * 0.9)
            continue
        while y < top + height * 0.88:
            page.rect(x0 + 0.05, y, x0 + 0.05 + bh * 0.7, y + bh * 0.7, fill=page.ink)
            page.words(
                x0 + 0.1, x0 + 0.1 + (x1 - x0 - 0.15) * page.uniform(0.4, 1.0), y, bh, coverage=0.7, word_len=0.07
            )
            y += bh * page.uniform(2.2, 3.2)
        if page.chance(0.5):
            page.logo(x1 - 0.1, top + height - 0.09, 0.06)
