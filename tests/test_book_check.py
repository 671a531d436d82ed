"""The book check that `make book` runs on the built pages."""

import pytest

from ibprune_lib.harness import book
from ibprune_lib.harness.book.check import check_pages, page_problems

CLEAN = """<main><p>Top-1 after fine-tuning.</p>
<div class="cell_output"><figure><img src="a.png"/><figcaption>Top-1 of every cell.</figcaption></figure>
<table><caption>Table 1 at the cpu scale</caption><tr><td>93.4</td></tr></table></div></main>"""


def test_a_clean_page_passes():
    assert page_problems(CLEAN) == []
    markdown_table = '<main><div class="cell_output"><p>Alignment per block.</p><table><tr><td>1</td></tr></table>'
    assert page_problems(markdown_table + "</div></main>") == []


@pytest.mark.parametrize(("html", "problem"), [
    ("<main>Not written yet</main>", "a placeholder page"),
    ("<main>see METHOD.md §2</main>", "a file this repository does not have"),
    ("<main>as issue 4 will show</main>", "tracker language"),
    ("<main>Traceback (most recent call last):</main>", "a traceback"),
    ('<main><div class="cell_output"><div class="output stderr">warn</div></div></main>', "stderr"),
    ('<main><div class="cell_output"><img src="a.png"/></div></main>', "a figure without a caption"),
    ('<main><div class="cell_output"><table><tr><td>1</td></tr></table></div></main>', "a table without a caption"),
])
def test_each_regression_a_reader_would_see_is_found(html, problem):
    assert any(problem in line for line in page_problems(html))


def test_check_pages_reports_only_pages_with_problems(tmp_path):
    from PIL import Image

    Image.new("RGB", (600, 300)).save(tmp_path / "a.png")
    (tmp_path / "good.html").write_text(CLEAN)
    (tmp_path / "bad.html").write_text("<main>Not written yet</main>")
    (tmp_path / "search.html").write_text("<main>issue 12</main>")  # Sphinx's own pages are not content
    assert list(check_pages(tmp_path)) == ["bad.html"]


@pytest.mark.parametrize(("width", "cell_class", "readable"), [
    (600, "cell", True),                   # narrower than the column: drawn at its own size
    (1100, "cell", False),                 # shrunk to 672 px: 9-pt text at 8.4 px
    (1100, "cell tag_full-width", True),   # shrunk to 920 px only
    (1500, "cell tag_full-width", False),
])
def test_figure_text_must_be_readable_at_its_rendered_size(tmp_path, width, cell_class, readable):
    from PIL import Image

    Image.new("RGB", (width, 300)).save(tmp_path / "fig.png")
    html = (f'<main><div class="{cell_class}"><div class="cell_output"><figure><img src="fig.png"/>'
            "<figcaption>A figure.</figcaption></figure></div></div></main>")
    problems = page_problems(html, tmp_path)
    assert (problems == []) == readable, problems
    assert readable or "tag its cell full-width (figures up to 12.8 in wide)" in problems[0]


@pytest.mark.slow
@pytest.mark.parametrize(("low", "high"), [(0.39, 0.79), (0.02, 2.0), (1e-4, 10.0)])
def test_a_plain_log_axis_has_labelled_ticks_at_any_span(low, high):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ibprune_lib.harness.book import plain_log_axis

    fig, ax = plt.subplots()
    ax.plot([1, 2], [low, high])
    ax.set_yscale("log")
    plain_log_axis(ax, "y")
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_yticklabels() if low <= t.get_position()[1] <= high]
    plt.close(fig)
    assert len([text for text in labels if text]) >= 2
    assert all("10^" not in text and "times" not in text for text in labels)


def test_a_caption_says_when_a_result_came_from_a_dirty_tree():
    assert book.short_commit("0123456789abcdef+dirty") == "0123456789+dirty"
    assert book.short_commit("0123456789abcdef") == "0123456789"
