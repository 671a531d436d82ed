#!/usr/bin/env bash
# Table 1's GoogLeNet row, which needs a GPU (an epoch takes about 33 min on the project's 2-core CPU): train the
# CIFAR-10 baseline the cells start from (the recipe of train_cpu.sh, bf16, resumable from
# runs/googlenet-gpu/checkpoint.pt), copy it to results/<scale>/baselines/googlenet/, then run Table 1's GoogLeNet
# cells, and only those, on the GPU. Rerun the same line after a kill: a trained baseline is not trained again and
# the grid resumes cell by cell. Commit the baseline folder and results/<scale>/table1/googlenet-*.json afterwards.
# UNTIL starts no cell expected to end after it, and so none before one GoogLeNet cell has run and timed the others:
# leave it unset the first time.
#   [IBPRUNE_DATA=...] [DEVICE=cuda] [SCALE=cpu|paper] [UNTIL=HH:MM] recipes/googlenet_gpu.sh [EPOCHS]
#   (default: 30 epochs, the cpu scale's 8-epoch fine-tuning protocol)
set -euo pipefail
cd "$(dirname "$0")/.."
epochs=${1:-30}
device=${DEVICE:-cuda}
scale=${SCALE:-cpu}
python=${PYTHON:-.venv/bin/python}
[[ $epochs =~ ^[1-9][0-9]*$ ]] || { echo "EPOCHS=$epochs: give a positive number of training epochs" >&2; exit 2; }
[[ $scale == cpu || $scale == paper ]] || { echo "SCALE=$scale: choose cpu or paper (smoke needs no GPU)" >&2; exit 2; }
baseline=results/$scale/baselines/googlenet
if [[ ! -f $baseline/googlenet.pt ]]; then
  "$python" -m ibprune_lib train --model googlenet --epochs "$epochs" --schedule onecycle --lr 0.1 --nesterov \
    --weight-decay 5e-4 --batch-size 128 --seed 0 --precision bf16 --device "$device" --no-progress \
    --out "runs/googlenet-$scale-gpu"
  mkdir -p "$baseline"
  cp "runs/googlenet-$scale-gpu/googlenet.pt" "runs/googlenet-$scale-gpu/log.json" "$baseline/"
fi
cells=()
while read -r id model _; do
  if [[ $model == googlenet ]]; then cells+=(--cell "$id"); fi
done < <("$python" -m ibprune_lib experiments list table1 --scale "$scale")
(( ${#cells[@]} )) || { echo "experiments list table1 --scale $scale named no GoogLeNet cell" >&2; exit 1; }
"$python" -m ibprune_lib experiments run table1 --scale "$scale" --device "$device" --no-progress "${cells[@]}" \
  ${UNTIL:+--until "$UNTIL"}
