"""Checks of the built book, by script: what a reader would stumble on in a page, and in a notebook's source."""

from __future__ import annotations

import os
import re
from pathlib import Path

from . import FIGURE_DPI, SMALLEST_FONT_PT



FORBIDDEN_TEXT = {
    r"Not written yet": "a placeholder page",
    r"METHOD\.md": "a file this repository does not have (cite the formulation page)",
    r"\bissues? #?\d+\b": "tracker language",
    r"Traceback \(most recent call last\)": "a traceback in an output",
}


COLUMN_PX = {False: 672, True: 920}
"""Width of the content column at a 1280 px window (sphinx-book-theme, measured in Chromium): a normal cell, and
a cell tagged ``full-width``."""
READABLE_PX = 9
"""The smallest text size a reader can read, in rendered pixels."""


def smallest_text_px(natural_width: int, full_width: bool) -> float:
    """Rendered size of a figure's smallest text in a 1280 px window: a figure wider than its column shrinks."""
    return SMALLEST_FONT_PT * FIGURE_DPI / 72 * min(1.0, COLUMN_PX[full_width] / natural_width)


def page_problems(html: str, page_dir: str | os.PathLike | None = None) -> list[str]:
    """What a reader would stumble on in one built page, as found by script.

    Checks the text for :data:`FORBIDDEN_TEXT`, cell outputs for stderr, every figure image in a cell output for
    a caption (a ``<figure>`` with ``<figcaption>``) and, with ``page_dir``, for text readable at its rendered
    size (:func:`smallest_text_px` ≥ :data:`READABLE_PX`), and every table in a cell output for a
    ``<caption>`` or a caption paragraph right before it.

    Args:
        html: the page's HTML.
        page_dir: the folder the page is in, to open its images; None skips the text-size check.

    Returns:
        One line per problem (empty when the page is clean).
    """
    import re

    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    main = soup.find("main") or soup
    text = main.get_text(" ")
    problems = [f"{why}: {match.group(0)!r}" for pattern, why in FORBIDDEN_TEXT.items()
                for match in [re.search(pattern, text, flags=re.IGNORECASE)] if match]
    for output in main.select("div.cell_output"):
        if output.select(".stderr, .output.stderr"):
            problems.append("a cell output with stderr")
        for image in output.find_all("img"):
            figure = image.find_parent("figure")
            if figure is None or figure.find("figcaption") is None:
                problems.append(f"a figure without a caption ({image.get('alt') or image.get('src', '')[:40]})")
            if page_dir is not None:
                problems += _text_size_problems(image, Path(page_dir))
        problems += ["a table without a caption" for table in output.find_all("table") if not _has_caption(table)]
    return problems


def _text_size_problems(image, page_dir: Path) -> list[str]:
    from PIL import Image

    cell = image.find_parent("div", class_="cell")
    full_width = cell is not None and "tag_full-width" in (cell.get("class") or [])
    if not (page_dir / image["src"]).is_file():
        return [f"a figure whose image file is missing ({image['src']})"]
    with Image.open(page_dir / image["src"]) as png:
        width = png.width
    px = smallest_text_px(width, full_width)
    if px >= READABLE_PX:
        return []
    widest = COLUMN_PX[True] * SMALLEST_FONT_PT / 72 / READABLE_PX  # inches, full width, drawn at FIGURE_DPI
    return [f"a figure whose smallest text renders at {px:.1f} px in a 1280 px window ({image['src'][-20:]}, "
            f"{width} px wide): tag its cell full-width (figures up to {widest:.1f} in wide) or narrow it"]


def _has_caption(table) -> bool:
    """A ``<caption>``, or a paragraph just before the table (or before the theme's scrolling wrapper around
    it) in the same output: a Markdown table's caption."""
    if table.find("caption") is not None:
        return True
    anchor = table.parent if "pst-scrollable-table-container" in (table.parent.get("class") or []) else table
    previous = anchor.find_previous_sibling()
    return previous is not None and previous.name == "p"


def check_pages(html_dir: str | os.PathLike) -> dict[str, list[str]]:
    """:func:`page_problems` of every content page under a built book's HTML folder (page → problems)."""
    skip = {"genindex.html", "search.html"}
    pages = sorted(p for p in Path(html_dir).rglob("*.html") if p.name not in skip and "_static" not in p.parts)
    found = {str(p.relative_to(html_dir)): page_problems(p.read_text(encoding="utf-8"), p.parent) for p in pages}
    return {page: problems for page, problems in found.items() if problems}


SHOWN_LINE_CHARS = 79
"""The longest line of code a notebook shows (PEP 8's): at 1280 px the content column shows about 80."""
_HIDDEN_INPUT = {"remove-cell", "remove-input"}
_COLLAPSED_INPUT = {"hide-input"}


def notebook_problems(cells: list[dict]) -> list[str]:
    """What a reader of a notebook's page would scroll past or squint at, from the notebook's cells.

    Args:
        cells: the ``cells`` of an nbformat-4 notebook (dicts with ``cell_type``, ``source``, ``metadata``).

    Returns:
        One line per problem: a shown line of code over :data:`SHOWN_LINE_CHARS` characters (cells whose
        input is removed are exempt), a ``book.glue`` call in a cell shown open (glue is plumbing: it goes in
        a ``remove-cell`` cell), a font size under :data:`SMALLEST_FONT_PT`, a cell that shows a figure
        (``plt.show()``) with no caption in its ``mystnb.figure`` metadata, or not exactly one ``parameters``
        cell.
    """
    problems, parameters = [], 0
    for number, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        tags = set(cell.get("metadata", {}).get("tags", []))
        parameters += "parameters" in tags
        source = "".join(cell["source"])
        where = f"code cell {number}"
        if not tags & _HIDDEN_INPUT:
            for line in source.splitlines():
                if len(line) > SHOWN_LINE_CHARS:
                    problems.append(f"{where}: a shown line of {len(line)} characters (at most {SHOWN_LINE_CHARS})")
            if not tags & _COLLAPSED_INPUT and "book.glue(" in source:
                problems.append(f"{where}: book.glue in shown code (move it to a remove-cell cell)")
        caption = cell.get("metadata", {}).get("mystnb", {}).get("figure", {}).get("caption")
        if "plt.show()" in source and "remove-cell" not in tags and not caption:
            problems.append(f"{where}: a figure without a caption (give the cell mystnb.figure.caption metadata)")
        for size in re.findall(r"fontsize=([\w.\"']+)", source):
            value = size.strip("\"'")
            if not value.replace(".", "", 1).isdigit() or float(value) < SMALLEST_FONT_PT:
                problems.append(f"{where}: fontsize={value} (at least {SMALLEST_FONT_PT} pt)")
    if parameters != 1:
        problems.append(f"{parameters} cells tagged parameters (exactly one reads IBPRUNE_SCALE)")
    return problems
