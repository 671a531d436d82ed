"""``python -m ibprune_lib.harness.book config --scale S`` and ``... check HTML_DIR``."""

from __future__ import annotations

import os

from ..grid.protocol import SCALES
from .check import check_pages
from .config import write_book_config



def main(argv: list[str] | None = None) -> None:
    """``config --scale S``: write the per-scale book config and print its path; ``check HTML_DIR``: exit 1 when a
    built page shows a placeholder, tracker language, a traceback or stderr, an uncaptioned figure or table, or a
    figure whose text is too small to read."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m ibprune_lib.harness.book", description=main.__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    config = commands.add_parser("config", help="write _build/config-<scale>.yml for `jupyter-book build --config`")
    config.add_argument("--scale", default=os.environ.get("IBPRUNE_SCALE", "smoke"), choices=SCALES)
    config.add_argument("--build-dir", default="_build")
    config.add_argument("--source", default="_config.yml")
    check = commands.add_parser("check", help="check the built pages for what a reader would stumble on")
    check.add_argument("html_dir", help="the built book's HTML folder, e.g. _build/html")
    args = parser.parse_args(argv)
    if args.command == "config":
        print(write_book_config(args.scale, args.build_dir, args.source))
        return
    if not os.path.isdir(args.html_dir):
        parser.error(f"{args.html_dir} is not a folder: build the book first (make book) or pass its _build/html")
    problems = check_pages(args.html_dir)
    for page, lines in problems.items():
        for line in lines:
            print(f"{page}: {line}")
    if problems:
        raise SystemExit(1)
    print(f"book check: every page under {args.html_dir} passed")


if __name__ == "__main__":
    main()
