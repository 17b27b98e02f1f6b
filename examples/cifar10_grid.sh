#!/usr/bin/env bash
# Search α, β, γ on your own CIFAR-10 copy (the binary version, e.g. cifar-10-batches-bin/), then
# write the family as LaTeX for the paper. Use a GPU for real results: the CPU preset is smoke-scale.
set -euo pipefail
DATA=${1:?usage: examples/cifar10_grid.sh PATH/TO/cifar-10-batches-bin}

scalesearch grid --budget 2x --data "$DATA" --seeds 2 --out runs/cifar10-grid
# Several workers may share the study: run the same command in another shell (OMP_NUM_THREADS=1 on one CPU).
scalesearch expand --phi 0..7 --from runs/cifar10-grid --format latex --out runs/cifar10-grid/family.tex
