"""The committed notebooks, read as a reader of the book meets them: shown code fits the column."""

import json
from pathlib import Path

import pytest

from ibprune_lib.harness.book.check import SHOWN_LINE_CHARS, notebook_problems

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


def code(source, *tags):
    return {"cell_type": "code", "source": source, "metadata": {"tags": list(tags)}}


PARAMETERS = code('scale = os.environ.get("IBPRUNE_SCALE", "smoke")', "parameters")
CAPTIONED = {"tags": ["hide-input"], "mystnb": {"figure": {"caption": "What the figure shows."}}}


def test_every_notebook_is_a_chapter_of_the_book_and_every_chapter_exists():
    toc = (Path(__file__).parent.parent / "_toc.yml").read_text(encoding="utf-8")
    chapters = [line.split("file:", 1)[1].strip() for line in toc.splitlines() if "file:" in line]
    notebooks = [chapter for chapter in chapters if chapter.startswith("notebooks/")]
    assert notebooks == [f"notebooks/{path.stem}" for path in NOTEBOOKS]  # all of them, in the folder's order
    root = Path(__file__).parent.parent
    assert all((root / f"{chapter}.ipynb").is_file() or (root / f"{chapter}.md").is_file() for chapter in chapters)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_has_no_problem_a_reader_would_see(path):
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    assert notebook_problems(cells) == []


def test_a_tidy_notebook_passes():
    cells = [
        PARAMETERS,
        code("result = select(X, Y, k)"),
        code('book.glue("k", k)', "remove-cell"),
        code("x" * (SHOWN_LINE_CHARS + 20), "remove-input"),
        code('book.glue("rows", rows)\nax.legend(fontsize=9)', "hide-input"),
        code("def show(ax):\n    plt.show()", "remove-cell"),  # a helper: the cells calling it show the figure
        code("plt.show()", "hide-input") | {"metadata": CAPTIONED},
        {"cell_type": "markdown", "source": "y" * 200, "metadata": {}},
    ]
    assert notebook_problems(cells) == []


@pytest.mark.parametrize(("cells", "problem"), [
    ([PARAMETERS, code("x" * (SHOWN_LINE_CHARS + 1))], f"a shown line of {SHOWN_LINE_CHARS + 1} characters"),
    ([PARAMETERS, code("x" * (SHOWN_LINE_CHARS + 1), "hide-input")], "a shown line of"),
    ([PARAMETERS, code('book.glue("k", k)')], "book.glue in shown code"),
    ([PARAMETERS, code("plt.show()", "hide-input")], "a figure without a caption"),
    ([PARAMETERS, code("ax.legend(fontsize=8)", "remove-input")], "fontsize=8"),
    ([PARAMETERS, code('ax.legend(fontsize="small")', "hide-input")], "fontsize=small"),
    ([code("scale = 'smoke'")], "0 cells tagged parameters"),
    ([PARAMETERS, PARAMETERS], "2 cells tagged parameters"),
])
def test_each_problem_is_found(cells, problem):
    assert any(problem in line for line in notebook_problems(cells))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_cell_has_a_unique_id(path):
    # nbformat 4.5 requires cell ids: without them the book build warns that they will become a hard error
    ids = [cell.get("id") for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]]
    assert None not in ids and len(set(ids)) == len(ids)
