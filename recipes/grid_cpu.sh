#!/usr/bin/env bash
# Start (or restart) the cpu-scale grid in the background, one table after another; each resumes cell by
# cell, so rerunning this at the start of every session is safe. Log: runs/grid.log. Stop: kill the pid it prints.
# The working files (checkpoints of unfinished cells) go to $IBPRUNE_WORK, default runs/; a folder outside the
# work tree keeps a half-finished cell across a fresh clone.
#   IBPRUNE_DATA=... IBPRUNE_WEIGHTS=... [IBPRUNE_WORK=...] recipes/grid_cpu.sh [TABLE ...]   (default: table1 study solvers ablations)
set -euo pipefail
cd "$(dirname "$0")/.."
if (( $# )); then tables=("$@"); else tables=(table1 study solvers ablations); fi
mkdir -p runs
python=${PYTHON:-.venv/bin/python}
nohup bash -c 'for table in "$@"; do "'"$python"'" -m ibprune_lib experiments run "$table" --scale cpu --no-progress; done' \
  grid "${tables[@]}" >> runs/grid.log 2>&1 &
echo "grid running as pid $! (tables: ${tables[*]}); log in runs/grid.log"
