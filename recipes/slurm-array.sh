#!/usr/bin/env bash
# One SLURM array task per cell of a table: the documented way to run a grid on a cluster. The grid's own
# per-cell lock and resumable stages make a requeued or repeated task safe; this script schedules nothing.
#
#   n=$(python -m ibprune_lib experiments list table1 --scale paper | wc -l)
#   sbatch --array=0-$((n - 1)) recipes/slurm-array.sh table1 paper
#
# Each task runs `experiments run TABLE --cell ID` for the ID on line $SLURM_ARRAY_TASK_ID of `experiments list`.
# Set IBPRUNE_DATA / IBPRUNE_WEIGHTS in the environment; results land in results/<scale>/<table>/.
#SBATCH --job-name=ibprune-grid
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --time=48:00:00
#SBATCH --requeue
#SBATCH --output=runs/slurm-%A_%a.log
set -euo pipefail
table=${1:?usage: sbatch --array=0-N recipes/slurm-array.sh TABLE [SCALE]}
scale=${2:-paper}
device=${DEVICE:-cuda}
cell=$(python -m ibprune_lib experiments list "$table" --scale "$scale" | sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" | cut -d' ' -f1)
[ -n "$cell" ] || { echo "no cell on line $SLURM_ARRAY_TASK_ID of '$table'" >&2; exit 2; }
exec python -m ibprune_lib experiments run "$table" --scale "$scale" --cell "$cell" --device "$device" --no-progress
