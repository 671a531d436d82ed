#!/usr/bin/env bash
# One SLURM array task per cell of a table, each cell on the GPUs of one node under torchrun: the documented way to
# run a grid on a cluster. The grid's per-cell lock and resumable stages make a requeued or repeated task safe
# (a killed run resumes every rank from rank 0's last epoch checkpoint); this script schedules nothing.
#
#   n=$(python -m ibprune_lib experiments list table2 --scale paper | wc -l)
#   sbatch --array=0-$((n - 1)) --gres=gpu:8 recipes/slurm-array.sh table2 paper
#
# Each task runs `experiments run TABLE --cell ID` for the ID on line $SLURM_ARRAY_TASK_ID of `experiments list`,
# as GPUS processes (default: the GPUs SLURM gave the task; NCCL, one GPU each); GPUS=1 runs a single process.
# Set IBPRUNE_DATA / IBPRUNE_WEIGHTS (and IBPRUNE_IMAGENET for table2) in the environment; results land in
# results/<scale>/<table>/. DRY_RUN=1 prints the command instead of running it.
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
python=${PYTHON:-python}
gpus=${GPUS:-$(nvidia-smi -L 2>/dev/null | wc -l)}
[[ $gpus =~ ^[0-9]+$ ]] || { echo "GPUS=$gpus: give a number of processes" >&2; exit 2; }
cell=$("$python" -m ibprune_lib experiments list "$table" --scale "$scale" | sed -n "$((${SLURM_ARRAY_TASK_ID:?set by sbatch --array} + 1))p" | cut -d' ' -f1)
[ -n "$cell" ] || { echo "no cell on line $SLURM_ARRAY_TASK_ID of '$table'" >&2; exit 2; }
run=(-m ibprune_lib experiments run "$table" --scale "$scale" --cell "$cell" --device "$device" --no-progress)
if (( gpus > 1 )); then
  command=("$python" -m torch.distributed.run --standalone --nproc_per_node "$gpus" "${run[@]}")
else
  command=("$python" "${run[@]}")
fi
if [[ -n ${DRY_RUN:-} ]]; then echo "${command[*]}"; exit 0; fi
exec "${command[@]}"
