"""Numbers that the book's prose pages quote from the library are the library's numbers."""

from pathlib import Path

import pytest

from ibprune_lib.cli import main
from ibprune_lib.counting import count
from ibprune_lib.models import get_model, input_size

READING = (Path(__file__).parent.parent / "book" / "reading-the-paper.md").read_text(encoding="utf-8")


@pytest.mark.slow
def test_the_quoted_count_output_is_what_the_command_prints(capsys):
    assert main(["count", "--model", "vgg16"]) == 0
    printed = capsys.readouterr().out
    assert f"```text\n{printed}```" in READING


@pytest.mark.slow
def test_the_parameter_counts_in_the_prose_are_the_models():
    prose = " ".join(READING.split())  # line breaks are the page's layout, not its content
    counts = {name: count(get_model(name), input_size(name)) for name in ("vgg16", "resnet56", "resnet110")}
    vgg = counts["vgg16"]
    assert f"batch norm's {vgg.params - vgg.params_without_norm:,} affine" in prose
    assert f"ResNet-56's {counts['resnet56'].params:,} parameters" in prose
    assert f"ResNet-110's {counts['resnet110'].params:,} are" in prose
