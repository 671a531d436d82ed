#!/usr/bin/env bash
# Baselines trained on this project's 2-core CPU machine (issue 6). Resumable: rerun the same line after a
# kill and it continues from runs/<model>-cpu/checkpoint.pt. Results are copied to results/cpu/baselines/.
# PRECISION=bf16 trains with a bf16 forward pass (fp32 weights): about 2x faster on a CPU with AVX512-BF16.
# DATASET=cifar100 trains on CIFAR-100 (the shared JPEG copy) into runs/<model>-cifar100-cpu and
# results/cpu/baselines/<model>-cifar100/.
set -euo pipefail
model=${1:?usage: [DATASET=cifar100] recipes/train_cpu.sh vgg16|resnet110 [epochs]}
epochs=${2:-15}
precision=${PRECISION:-fp32}
dataset=${DATASET:-cifar10}
name=$model$([[ $dataset == cifar10 ]] || echo "-$dataset")
python -m ibprune_lib train --model "$model" --dataset "$dataset" --epochs "$epochs" --schedule onecycle --lr 0.1 \
  --nesterov --weight-decay 5e-4 --batch-size 128 --seed 0 --precision "$precision" --out "runs/$name-cpu"
mkdir -p "results/cpu/baselines/$name"
cp "runs/$name-cpu/$model.pt" "runs/$name-cpu/log.json" "results/cpu/baselines/$name/"
