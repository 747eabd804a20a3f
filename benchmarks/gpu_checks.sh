#!/usr/bin/env bash
# The checks that need a CUDA device, in one run (CI has no GPU; about 5 minutes on one H200):
#   1. the GPU tests (tests/tuner/test_cuda.py and every test marked gpu): real OOM under a memory cap, restore;
#   2. benchmarks/gpu_batch_size_check.py: predicted vs real out-of-memory boundary of torchvision models;
#   3. the users' guide's workflow on .configs/alexnet_scratch.toml (GPU, 16-mixed, power search, LR finder,
#      one epoch of OneCycle training) on synthetic pages instead of the real dataset;
#   4. every other test with a GPU visible (catches tests that assume there is none).
# Logs, the LR plot and the batch-size JSON go to $OUT (default /tmp/gpu_checks).
#
#   bash benchmarks/gpu_checks.sh [more CLI overrides for step 3, e.g. --tuner_config.batch_size_mode=auto]
set -uo pipefail
OUT=${OUT:-/tmp/gpu_checks}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
status=0
step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to $OUT/NAME.log, remember a failure
    local name=$1 limit=$2
    shift 2
    echo "=== $name: $*"
    local start=$SECONDS
    timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.log"
    local rc=${PIPESTATUS[0]}
    echo "=== $name: exit $rc after $((SECONDS - start)) s"
    [ "$rc" -eq 0 ] || status=1
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__)"

step gpu_tests 150 python -m pytest -q -p no:cacheprovider -m gpu tests
step gpu_batch_size 150 python -m benchmarks.gpu_batch_size_check --limit-gib 16
cp benchmarks/results/batch_size_gpu.json "$OUT/" 2>/dev/null
step guide_cli 150 python traenslenzor/doc_classifier/run.py --config_path .configs/alexnet_scratch.toml \
    --tune-batch-size --tune-learning-rate \
    --datamodule_config.source=synthetic --datamodule_config.synthetic_train_size=4096 \
    --datamodule_config.synthetic_val_size=512 --datamodule_config.synthetic_test_size=512 \
    --datamodule_config.num_workers=8 --tuner_config.max_memory=0.05 --trainer_config.max_epochs=1 "$@"
cp .logs/lr_finder_plot.png .logs/tuning_results.json "$OUT/" 2>/dev/null
step other_tests 200 python -m pytest -q -p no:cacheprovider -m "not gpu" tests
exit $status
