"""The book's shared table style."""

import pandas as pd

from ibprune_lib.report import style_table


def test_tables_scroll_inside_the_column_with_text_left_numbers_right_and_no_index():
    frame = pd.DataFrame({"layer": ["layer1.4.conv1", "layer2.0.conv1"], "kept": [11, 16], "λ": [1.5e-3, 2e-4]})
    html = style_table(frame, "A caption").format({"λ": "{:.3g}"}).to_html()
    assert "<caption>A caption</caption>" in html and "overflow-x: auto" in html
    assert "row_heading" not in html  # no raw 0, 1, … index
    styles = html.split("</style>")[0]
    left = [c for c in styles.split("}") if "text-align: left" in c and "caption" not in c]
    assert left and all("col0" in block and "col1" not in block and "col2" not in block for block in left)
    assert "caption {\n  text-align: left" in styles  # a caption reads from the left edge of the column
    assert ">0.0015<" in html and ">layer1.4.conv1<" in html
