#!/usr/bin/env bash
# Start (or restart) the cpu-scale grid in the background, one table after another; each resumes cell by
# cell, so rerunning this at the start of every session is safe. Log: runs/grid.log. Stop: kill the pid it prints.
# The working files (checkpoints of unfinished cells) go to $IBPRUNE_WORK, default runs/; a folder outside the
# work tree keeps a half-finished cell across a fresh clone.
# UNTIL=HH:MM (or an ISO date and time) starts no cell expected to end after it: set it to when the machine goes
# away, and no half-run cell is lost (a cell of a kind not measured yet starts regardless).
#   IBPRUNE_DATA=... IBPRUNE_WEIGHTS=... [IBPRUNE_WORK=...] [UNTIL=...] recipes/grid_cpu.sh [TABLE ...]
#   (default tables: table1 presets study solvers ablations)
set -euo pipefail
cd "$(dirname "$0")/.."
if (( $# )); then tables=("$@"); else tables=(table1 presets study solvers ablations); fi
mkdir -p runs
python=${PYTHON:-.venv/bin/python}
export UNTIL=${UNTIL:-}
nohup bash -c 'for table in "$@"; do
  "'"$python"'" -m ibprune_lib experiments run "$table" --scale cpu --no-progress ${UNTIL:+--until "$UNTIL"}; done' \
  grid "${tables[@]}" >> runs/grid.log 2>&1 &
echo "grid running as pid $! (tables: ${tables[*]}); log in runs/grid.log"
