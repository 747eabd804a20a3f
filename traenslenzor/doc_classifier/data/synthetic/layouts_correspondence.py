"""Layouts of correspondence-like pages: letter, memo, e-mail, handwritten note, resume.

Letter and memo share the letterhead, body text and signature; the memo's cues are its title and ``To/From``
field block, the letter's are the address block, salutation and closing. Either cue is sometimes missing, as in
RVL-CDIP, so the pair stays confusable.
"""

from __future__ import annotations

from .drawing import Page
from .layout_parts import address_block, body, field_list, frame, letterhead, signature


def letter(page: Page) -> None:
    f = frame(page)
    y = f.top
    if page.chance(0.65):
        y = letterhead(page, f, y) + 0.02
    date_x = f.left if page.chance(0.6) else f.left + f.width * 0.6
    page.words(date_x, date_x + page.uniform(0.1, 0.2), y, f.text_h)
    y += 0.04
    if page.chance(0.7):
        y = address_block(page, f, f.left, y) + 0.03
    if page.chance(0.3):  # "Re:" / "Subject:" block, as memos have
        y = field_list(page, f, y, ["Re:", "Ref:"][: page.integer(1, 2)], label_w=0.08) + 0.02
    elif page.chance(0.4):  # underlined subject line
        page.words(f.left + 0.05, f.left + page.uniform(0.2, 0.5), y, f.text_h, coverage=0.8)
        y += 0.03
    if page.chance(0.85):
        page.words(f.left, f.left + page.uniform(0.08, 0.18), y, f.text_h)  # "Dear ...,"
        y += f.text_h * f.leading * 2
    y = body(page, f, y, f.bottom - 0.18, paragraphs=(2, 5), lines=(3, 8))
    sig_x = f.left if page.chance(0.5) else 0.5 + page.uniform(0.0, 0.1)
    y = signature(page, f, sig_x, y + 0.02)
    if page.chance(0.4):  # "cc:" / enclosure lines
        address_block(page, f, f.left, min(y + 0.03, f.bottom - 0.03), lines=page.integer(1, 2))


def memo(page: Page) -> None:
    f = frame(page)
    y = f.top
    if page.chance(0.5):
        y = letterhead(page, f, y) + 0.01
    if page.chance(0.55):
        title_h = page.uniform(0.016, 0.03)
        x = f.left if page.chance(0.6) else 0.5 - 0.3 * title_h * 10 / 2
        page.label(x, y, str(page.rng.choice(["MEMORANDUM", "MEMO", "INTEROFFICE MEMORANDUM"])), title_h, bold=True)
        y += title_h * 2.5
    names = ["TO:", "FROM:", "DATE:", "SUBJECT:"] if page.chance(0.5) else ["To:", "From:", "Re:"]
    if page.chance(0.3):
        names.insert(2, "CC:")
    if page.chance(0.25):  # a short header, like a letter's reference lines
        names = names[: page.integer(2, 3)]
    y = field_list(page, f, y, names, label_w=page.uniform(0.09, 0.14))
    y += 0.01
    if page.chance(0.6):
        page.hrule(f.left, f.right, y, page.uniform(0.001, 0.004))
    y += 0.025
    y = body(page, f, y, f.bottom - 0.06, paragraphs=(2, 6), lines=(2, 8))
    if page.chance(0.5):  # initials or a signature, as letters have
        signature(page, f, f.left, min(y + 0.02, f.bottom - 0.12))


def email(page: Page) -> None:
    f = frame(page, text_h=(0.006, 0.01))
    y = f.top
    if page.chance(0.6):  # print header: sender name and print date, small
        page.words(f.left, f.left + 0.3, y, f.text_h * 0.8)
        page.words(f.right - 0.15, f.right, y, f.text_h * 0.8)
        y += 0.03
        page.hrule(f.left, f.right, y, 0.003)
        y += 0.02
    y = field_list(
        page, f, y, ["From:", "Sent:", "To:", "Cc:", "Subject:"][: page.integer(3, 5)], value_w=(0.2, 0.6), label_w=0.09
    )
    y += 0.025
    for _ in range(page.integer(1, 3)):
        y = body(page, f, y, f.bottom - 0.05, paragraphs=(1, 3), lines=(1, 4), indent=False)
        if y > f.bottom - 0.15:
            break
        if page.chance(0.5):  # quoted reply: indented with a bar, or an "Original Message" separator
            page.vrule(f.left, y, y + 0.1, 0.003)
            y = body(page, f, y, y + 0.1, paragraphs=(1, 2), lines=(2, 4), x0=f.left + 0.02, indent=False)
        else:
            page.words(f.left, f.left + 0.35, y, f.text_h, coverage=0.8)
            y += 0.03
            y = field_list(page, f, y, ["From:", "Sent:", "To:"], value_w=(0.2, 0.5), label_w=0.09) + 0.02
    if page.chance(0.5):  # print footer: URL and page number
        page.words(f.left, f.left + 0.4, f.bottom, f.text_h * 0.8)
        page.words(f.right - 0.06, f.right, f.bottom, f.text_h * 0.8)


def handwritten(page: Page) -> None:
    f = frame(page, margin=(0.05, 0.15))
    line_h = page.uniform(0.022, 0.045)
    ruled = page.chance(0.4)
    slant = page.uniform(-0.1, 0.5)
    pen = page.uniform(0.002, 0.005)
    ink = page.integer(10, 110)
    y = f.top + page.uniform(0.0, 0.1)
    if ruled:
        yy = f.top
        while yy < f.bottom:
            page.hrule(0.03, 0.97, yy + line_h * 0.5, 0.0015, ink=190)
            yy += line_h
    end = f.bottom - page.uniform(0.0, 0.5)
    while y < end:
        x = f.left + page.uniform(0.0, 0.05)
        stop = f.right - page.uniform(0.0, 0.2)
        while x < stop:
            w = page.uniform(0.04, 0.16)
            page.scribble(x, min(x + w, stop), y, line_h * page.uniform(0.35, 0.55), slant=slant, width=pen, ink=ink)
            x += w + page.uniform(0.015, 0.04)
        y += line_h * page.uniform(0.9, 1.3)


def resume(page: Page) -> None:
    f = frame(page)
    y = f.top
    name_h = page.uniform(0.02, 0.035)
    centred = page.chance(0.6)
    x = 0.5 - 0.15 if centred else f.left
    page.label(
        x, y, str(page.rng.choice(["JOHN A. SMITH", "Mary Jones", "CURRICULUM VITAE", "RESUME"])), name_h, bold=True
    )
    y += name_h * 1.8
    for _ in range(page.integer(1, 3)):  # contact lines
        w = page.uniform(0.25, 0.5)
        page.words(0.5 - w / 2 if centred else f.left, 0.5 + w / 2 if centred else f.left + w, y, f.text_h)
        y += f.text_h * f.leading
    y += 0.02
    date_col = page.chance(0.5)
    while y < f.bottom - 0.08:
        page.label(
            f.left,
            y,
            str(page.rng.choice(["EDUCATION", "EXPERIENCE", "PUBLICATIONS", "SKILLS"])),
            f.text_h * 1.3,
            bold=True,
        )
        if page.chance(0.6):
            page.hrule(f.left, f.right, y + f.text_h * 2.0, 0.002)
        y += f.text_h * 3.2
        for _ in range(page.integer(2, 4)):
            if y > f.bottom - 0.03:
                break
            x0 = f.left + (0.18 if date_col else 0.03)
            if date_col:
                page.words(f.left, f.left + 0.12, y, f.text_h, coverage=0.7)
            else:
                page.words(f.right - 0.12, f.right, y, f.text_h, coverage=0.7)
            page.bar(x0 - 0.015, x0 - 0.008, y, f.text_h, 0.9)  # bullet
            lines = page.integer(1, 3)
            y = page.paragraph(x0, f.right - (0.0 if date_col else 0.15), y, lines, f.text_h, f.leading)
            y += f.text_h * 0.8
        y += 0.02
