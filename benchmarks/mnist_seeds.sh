#!/usr/bin/env bash
# The accuracy target: the default command for seeds 1, 2 and 3 on the real MNIST, then the table.
# Usage: benchmarks/mnist_seeds.sh [DATA_DIR]   (default ../shared/datasets/mnist); about 3 min per seed on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
data_dir=${1:-../shared/datasets/mnist}
for seed in 1 2 3; do
  trainer run --data-dir "$data_dir" --seed "$seed" --name "seed$seed" --force --no-progress
done
python benchmarks/mnist_results.py outputs/runs/seed1 outputs/runs/seed2 outputs/runs/seed3
