"""The reproduction harness: what the book and ``experiments`` use to reproduce the paper, apart from the method.

:mod:`.grid` (the tables' cells, their protocol and runner), :mod:`.report` (tables and claims from the
results), :mod:`.verdicts` (comparisons of repeated runs), :mod:`.records` (reading and migrating committed
results), :mod:`.paper` (the papers' reported numbers), :mod:`.book` (notebook helpers, the book's config and
checks). The method itself (``ibprune_lib.selection``, ``ibprune_lib.pruning`` and what they use) imports
nothing from here.
"""
