"""Layouts of structured pages: form, questionnaire, invoice, budget, specification.

Form and questionnaire share boxes, check boxes and title bars; the form is a grid of labelled boxes, the
questionnaire numbered questions followed by answer options, and each borrows the other's parts at times.
"""

from __future__ import annotations

import itertools

import numpy as np

from .drawing import Page
from .layout_parts import Frame, address_block, frame, letterhead, table


def _title(page: Page, f: Frame, y: float, words: list[str], p_bar: float = 0.4) -> float:
    """A centred or left title, sometimes white on a dark band; returns the y below."""
    h = page.uniform(0.014, 0.026)
    text = str(page.rng.choice(words))
    if page.chance(p_bar):
        page.rect(f.left, y - h * 0.4, f.right, y + h * 1.5, fill=page.integer(20, 90))
        page.label(f.left + 0.02, y, text, h, ink=250, bold=True)
    else:
        x = f.left if page.chance(0.5) else 0.5 - 0.55 * h * len(text) / 2
        page.label(x, y, text, h, bold=True)
    return y + h * 2.6


def _section_band(page: Page, f: Frame, y: float) -> float:
    h = f.text_h * page.uniform(1.6, 2.4)
    page.rect(f.left, y, f.right, y + h, fill=page.integer(40, 180))
    page.bar(f.left + 0.01, f.left + page.uniform(0.1, 0.3), y + h * 0.3, f.text_h * 0.8, 0.9, ink=250)
    return y + h + 0.008


def _checkbox_row(page: Page, f: Frame, x0: float, y: float, options: int, s: float) -> None:
    step = (f.right - x0) / options
    for i in range(options):
        x = x0 + i * step
        page.checkbox(x, y, s, ticked=page.chance(0.25))
        page.words(x + s * 1.6, x + s * 1.6 + step * page.uniform(0.3, 0.6), y + s * 0.15, f.text_h)


def _question(page: Page, f: Frame, y: float, number: int, s: float, likert: bool) -> float:
    """A numbered question and its answer options (check boxes, a rating row or answer lines)."""
    page.label(f.left, y, f"{number}.", f.text_h, bold=True)
    y = page.paragraph(f.left + 0.04, f.right, y, page.integer(1, 2), f.text_h, f.leading) + 0.006
    if likert:
        for i in range(5):
            page.checkbox(f.left + 0.1 + i * (f.width - 0.1) / 5, y, s, ticked=page.chance(0.2))
        return y + s * 2.2
    if page.chance(0.75):
        for _ in range(page.integer(2, 4) if page.chance(0.5) else 1):
            _checkbox_row(page, f, f.left + 0.06, y, page.integer(2, 4), s)
            y += s * 1.9
        return y
    for _ in range(page.integer(1, 3)):
        page.hrule(f.left + 0.06, f.right, y + 0.015, 0.0012)
        y += 0.025
    return y


def _box_row(page: Page, f: Frame, y: float) -> float:
    """A row of boxes, each with a small label at its top-left and sometimes a filled-in value."""
    row_h = page.uniform(0.035, 0.06)
    cuts = sorted(page.rng.uniform(f.left, f.right, page.integer(1, 4)))
    xs = [f.left, *cuts, f.right]
    for a, b in itertools.pairwise(xs):
        page.rect(a, y, b, y + row_h, outline=page.ink, width=0.0015)
        page.words(a + 0.005, a + (b - a) * 0.5, y + 0.004, f.text_h * 0.6, coverage=0.7)
        if page.chance(0.6):
            page.words(a + 0.01, a + (b - a) * page.uniform(0.3, 0.8), y + row_h * 0.55, f.text_h)
    return y + row_h


def _structured_page(page: Page, f: Frame, y: float, weights: dict[str, float]) -> None:
    """Fill the page with blocks drawn by ``weights``: the shared grammar of forms and questionnaires."""
    kinds, p = list(weights), np.array(list(weights.values()))
    s = page.uniform(0.011, 0.02)
    likert = page.chance(0.35)
    number = 1
    while y < f.bottom - 0.05:
        kind = kinds[int(page.rng.choice(len(kinds), p=p / p.sum()))]
        if kind == "band":
            y = _section_band(page, f, y)
        elif kind == "boxes":
            y = _box_row(page, f, y)
        elif kind == "checks":
            _checkbox_row(page, f, f.left + 0.01, y + 0.008, page.integer(2, 5), s)
            y += s * 2.5
        elif kind == "question":
            y = _question(page, f, y, number, s, likert)
            number += 1
        else:  # "Name: ______" fill-in lines
            for _ in range(page.integer(1, 3)):
                page.words(f.left, f.left + 0.12, y, f.text_h, coverage=0.7)
                page.hrule(f.left + 0.14, f.right, y + f.text_h * 1.2, 0.0015)
                y += f.text_h * 3.2
        y += page.uniform(0.0, 0.02)


def form(page: Page) -> None:
    f = frame(page, margin=(0.04, 0.12))
    y = f.top
    if page.chance(0.4):
        y = letterhead(page, f, y)
    y = _title(page, f, y, ["APPLICATION FORM", "REQUEST FORM", "ORDER", "REPORT FORM", "FORM"])
    if page.chance(0.25):  # instructions
        y = page.paragraph(f.left, f.right, y, page.integer(1, 3), f.text_h, f.leading) + 0.02
    _structured_page(page, f, y, {"boxes": 0.45, "band": 0.13, "checks": 0.15, "lines": 0.15, "question": 0.12})
    if page.chance(0.5):
        page.hrule(f.left, f.left + 0.3, f.bottom - 0.01, 0.0015)
        page.hrule(f.right - 0.25, f.right, f.bottom - 0.01, 0.0015)


def questionnaire(page: Page) -> None:
    f = frame(page, margin=(0.04, 0.15))
    y = f.top
    if page.chance(0.2):
        y = letterhead(page, f, y)
    y = _title(page, f, y, ["QUESTIONNAIRE", "SURVEY", "Smoking Habits Survey", "INTERVIEW"], p_bar=0.35)
    if page.chance(0.6):  # instructions paragraph
        y = page.paragraph(f.left, f.right, y, page.integer(2, 4), f.text_h, f.leading) + 0.02
    _structured_page(page, f, y, {"question": 0.55, "boxes": 0.14, "checks": 0.11, "lines": 0.12, "band": 0.08})


def invoice(page: Page) -> None:
    f = frame(page)
    y = letterhead(page, f, f.top)
    h = page.uniform(0.018, 0.03)
    page.label(
        f.right - 0.3 if page.chance(0.6) else f.left,
        y,
        str(page.rng.choice(["INVOICE", "Invoice", "STATEMENT", "BILL"])),
        h,
        bold=True,
    )
    y += h * 2.2
    for i in range(page.integer(2, 4)):  # invoice number / date fields at the right
        page.words(f.right - 0.35, f.right - 0.22, y + i * 0.02, f.text_h, coverage=0.8)
        page.words(f.right - 0.18, f.right - 0.03, y + i * 0.02, f.text_h)
    y = address_block(page, f, f.left, y) + 0.04
    rows, cols = page.integer(3, 9), page.integer(3, 5)
    row_h = page.uniform(0.022, 0.035)
    y = table(page, f.left, f.right, y, rows + 1, cols, row_h, grid=page.chance(0.7), text_h=f.text_h) + 0.01
    box_x = f.right - page.uniform(0.25, 0.35)
    for i in range(page.integer(2, 4)):  # subtotal, tax, total
        page.words(box_x, box_x + 0.1, y + i * 0.025, f.text_h, coverage=0.8)
        page.words(f.right - 0.08, f.right - 0.01, y + i * 0.025, f.text_h)
    page.rect(box_x - 0.01, y - 0.008, f.right, y + page.integer(2, 4) * 0.025, outline=page.ink, width=0.002)
    if page.chance(0.6):
        page.paragraph(f.left, f.right, f.bottom - 0.05, 2, f.text_h * 0.8, f.leading)


def budget(page: Page) -> None:
    f = frame(page, margin=(0.04, 0.1), text_h=(0.006, 0.01))
    y = _title(page, f, f.top, ["BUDGET", "Budget Summary", "PROPOSED BUDGET", "FY Budget"], p_bar=0.15)
    cols = page.integer(3, 7)
    row_h = page.uniform(0.016, 0.026)
    grid = page.chance(0.5)
    while y < f.bottom - 0.1:
        rows = page.integer(4, 14)
        rows = min(rows, int((f.bottom - 0.06 - y) / row_h))
        if rows < 2:
            break
        y = table(page, f.left, f.right, y, rows, cols, row_h, grid=grid, header=page.chance(0.5), text_h=f.text_h)
        # total row under a double rule
        page.hrule(f.left + f.width / cols, f.right, y + 0.004, 0.0015)
        page.hrule(f.left + f.width / cols, f.right, y + 0.009, 0.0015)
        for c in range(cols):
            cx1 = f.left + (c + 1) * f.width / cols - 0.01
            page.bar(cx1 - f.width / cols * 0.5, cx1, y + 0.014, f.text_h, 0.85)
        y += 0.05


def specification(page: Page) -> None:
    f = frame(page)
    y = f.top
    if page.chance(0.6):  # title block: bordered box with document number and revision
        h = page.uniform(0.06, 0.1)
        page.rect(f.left, y, f.right, y + h, outline=page.ink, width=0.003)
        page.vrule(f.right - 0.25, y, y + h, 0.002)
        page.label(
            f.left + 0.02,
            y + h * 0.35,
            str(page.rng.choice(["SPECIFICATION", "PRODUCT SPEC", "Test Method"])),
            h * 0.25,
            bold=True,
        )
        page.words(f.right - 0.23, f.right - 0.03, y + h * 0.3, f.text_h)
        page.words(f.right - 0.23, f.right - 0.08, y + h * 0.6, f.text_h)
        y += h + 0.03
    major = 1
    while y < f.bottom - 0.05:
        page.label(f.left, y, f"{major}.0", f.text_h * 1.1, bold=True)
        page.words(f.left + 0.07, f.left + page.uniform(0.2, 0.4), y, f.text_h * 1.1, coverage=0.85)
        y += f.text_h * f.leading * 1.4
        for minor in range(1, page.integer(2, 5)):
            if y > f.bottom - 0.03:
                break
            page.label(f.left + 0.04, y, f"{major}.{minor}", f.text_h)
            if page.chance(0.3):  # parameter table: property, value, tolerance, unit
                y = (
                    table(
                        page,
                        f.left + 0.1,
                        f.right,
                        y,
                        page.integer(2, 5),
                        4,
                        f.text_h * 2.4,
                        grid=True,
                        header=False,
                        numeric_from=1,
                        text_h=f.text_h,
                    )
                    + 0.01
                )
            else:
                y = page.paragraph(f.left + 0.11, f.right, y, page.integer(1, 3), f.text_h, f.leading)
            y += f.text_h
        major += 1
        y += 0.01
