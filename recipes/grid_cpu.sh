#!/usr/bin/env bash
# Start (or restart) the cpu-scale grid in the background, one table after another; each resumes cell by
# cell, so rerunning this at the start of every session is safe. Log: $GRID_LOG (default runs/grid.log). Stop: kill
# the pids it prints.
# The working files (checkpoints of unfinished cells) go to $IBPRUNE_WORK, default runs/; a folder outside the
# work tree keeps a half-finished cell across a fresh clone.
# RUNNERS=N (default: one per core) starts N runners of the same tables, each with cores/N torch threads (THREADS=T
# sets T instead, e.g. THREADS=1 RUNNERS=1 beside a cell run by hand on the other core); the grid's per-cell lock
# keeps them on different cells. The small convolutions of these CIFAR networks use two threads poorly: two
# single-thread runners finish more training steps on two cores than one two-thread runner
# (benchmarks/results/grid_runners.json says how many more). A cell then takes longer, the grid less.
# UNTIL=HH:MM (the next time the clock shows it, resolved once when the grid starts; or an ISO date and time) starts
# no cell expected to end after it, and no table once it is past: set it to when the machine goes away, and no
# half-run cell is lost. A cell with fine-tuning epochs done is timed by them; any other by the mean of the done
# cells of the same kind (network, solver, fine-tuning precision) nearest it in the share of the MACs kept, their
# fine-tuning scaled to its share, those that ran on this CPU with the runners' thread count first, or, for a
# table's first cells, by the other tables' done cells of that kind; a cell of a kind nothing done has timed does
# not start under UNTIL: run it by hand, without --until.
# `experiments status TABLE --scale cpu --threads N` shows what runners of N threads expect.
#   IBPRUNE_DATA=... IBPRUNE_WEIGHTS=... [IBPRUNE_WORK=...] [RUNNERS=N] [THREADS=T] [UNTIL=...] [GRID_LOG=...] \
#     recipes/grid_cpu.sh [TABLE ...]
#   (default tables: table8 table1 longer presets study ablations solvers beyond: Table 8's five cells, a few
#   hours, finish a table before Table 1's remaining day of cells; the smoothed solver's cells come last but for
#   `beyond`: sGLP-IB's selection with SPG takes tens of minutes a seed on VGG-16. Table 1's runs 1 and 2 go
#   ResNet-56, VGG-16, then ResNet-110; to run the 4x longer schedule and the `beyond` cells (no fine-tuning,
#   minutes each) before ResNet-110's runs, as issue 41 orders them, give `beyond longer table1` once VGG-16's
#   runs are done.)
# A runner reads a table's declaration when it starts that table: cells declared later are seen by runners started
# after the change.
set -euo pipefail
cd "$(dirname "$0")/.."
if (( $# )); then tables=("$@"); else tables=(table8 table1 longer presets study ablations solvers beyond); fi
cores=$(nproc)
runners=${RUNNERS:-$cores}
[[ $runners =~ ^[1-9][0-9]*$ ]] || { echo "RUNNERS=$runners: give a positive number of runners" >&2; exit 2; }
threads=${THREADS:-$(( cores / runners > 0 ? cores / runners : 1 ))}
[[ $threads =~ ^[1-9][0-9]*$ ]] || { echo "THREADS=$threads: give a positive number of torch threads a runner" >&2; exit 2; }
log=${GRID_LOG:-runs/grid.log}
mkdir -p "$(dirname "$log")"
python=${PYTHON:-.venv/bin/python}
export UNTIL=${UNTIL:-}
if [[ -n $UNTIL ]]; then  # resolved once, so that a table started after 03:25 does not read UNTIL=03:25 as tomorrow's
  UNTIL=$("$python" -c 'import sys
from ibprune_lib.cli import parse_until
try:
    print(parse_until(sys.argv[1], name="UNTIL").isoformat(timespec="minutes"))
except ValueError as error:
    sys.exit(str(error))' "$UNTIL") || exit 2
fi
pids=()
for ((i = 0; i < runners; i++)); do
  OMP_NUM_THREADS=$threads nohup bash -c 'for table in "$@"; do
    [[ -z $UNTIL || $(date +%Y-%m-%dT%H:%M) < $UNTIL ]] || break
    "'"$python"'" -m ibprune_lib experiments run "$table" --scale cpu --no-progress ${UNTIL:+--until "$UNTIL"}; done' \
    grid "${tables[@]}" >> "$log" 2>&1 &
  pids+=($!)
done
echo "grid running as pids ${pids[*]} ($runners runner(s) of $threads thread(s); tables: ${tables[*]}); log in $log"
