"""``experiments list|status|run``: the grid from the command line, and ``--until``'s times."""

from __future__ import annotations

from datetime import datetime, timedelta

import torch

from .. import distributed

def parse_until(text: str, now: datetime | None = None, name: str = "--until") -> datetime:
    """``--until``'s moment, local time (``recipes/grid_cpu.sh`` resolves ``UNTIL`` with it once, so that every
    table of the grid reads the same moment).

    Args:
        text: ``HH:MM``, the next time the clock shows it (tomorrow when it is already past today, so that
            ``00:30`` said at 22:00 means in two and a half hours), or an ISO 8601 date and time, local time.
        now: the present moment (default: ``datetime.now()``).
        name: what the errors call ``text``: the flag or variable it came from.

    Raises:
        ValueError: ``text`` is not a time, or an ISO time already past (every cell would be skipped).
    """
    now = now or datetime.now()
    try:
        clock = datetime.strptime(text, "%H:%M")
    except ValueError:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{name} {text!r} is not a time: give HH:MM (the next time the clock shows it) or an "
                             "ISO date and time, e.g. 2026-12-02T20:30") from None
        if moment <= now:
            raise ValueError(f"{name} {text!r} is already past (now {now:%Y-%m-%dT%H:%M}): give a later time, or "
                             "HH:MM for the next time the clock shows it")
        return moment
    moment = now.replace(hour=clock.hour, minute=clock.minute, second=0, microsecond=0)
    return moment if moment > now else moment + timedelta(days=1)


def run_experiments(args) -> int:
    from ..harness.grid import NOT_RUN_HERE, Grid, distinguishing_settings, status_line
    from ..train import resolve_device

    grid = Grid(args.table, args.scale, results=args.results, work=args.work)
    until = None if args.until is None else parse_until(args.until).timestamp()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.action == "list":
        for cell in grid.select(args.cell):
            target, *settings = cell.settings()
            print(f"{cell.id:<32} {cell.model:<10} {cell.method:<7} {cell.widths:<9} {target:<18} " + " ".join(settings))
        return 0
    if args.action == "status":
        states = {cell.id: grid.state(cell) for cell in grid.cells}
        settings = distinguishing_settings(grid.cells)
        width = max(map(len, settings.values()), default=0)
        for cell in grid.select(args.cell):
            state = states[cell.id]
            print(f"{cell.id:<32} {settings[cell.id]:<{width}} {state['state']:<12} {state['detail']}")
        print(status_line(grid, states))
        return 0
    device = distributed.setup(resolve_device(args.device))  # under torchrun: join the other processes
    outcomes = grid.run(grid.select(args.cell), device, progress=args.progress, until=until)
    if not distributed.is_main():
        return 0
    failed = [cell.id for cell, outcome in outcomes if outcome.startswith("failed")]
    print(f"{grid.name} ({grid.scale}): " + ", ".join(
        f"{sum(o.startswith(k) for _, o in outcomes)} {k}" for k in ("done", "skipped", "failed", NOT_RUN_HERE)
        if k != NOT_RUN_HERE or any(o.startswith(k) for _, o in outcomes)))
    untimed = [cell.id for cell, outcome in outcomes if outcome.startswith("skipped (not timed yet")]
    if untimed:
        print(f"left {len(untimed)} cell(s) nothing has timed yet, as --until cannot hold for them: run them "
              f"without --until ({', '.join(untimed)})")
    return 1 if failed else 0
