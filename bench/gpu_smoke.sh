#!/bin/bash
# GPU smoke check of the --device cuda training paths, for a session lent a GPU (device tool: command
# "bash bench/gpu_smoke.sh", ~2 min on an H100). The device gets only the repository: the images are
# generated there (5 colours x 40 photos, 48x64 JPEG), weights "none" (no download). Checks: the
# whole network fine-tuned on the fly on CUDA (bfloat16 autocast), single process and torchrun DDP
# (1 process, NCCL); each run must finish and write model.pt and metrics.json. Not an accuracy check:
# with weights "none" and 3 epochs the model stays near chance; the same command with --device cpu
# here gives the same accuracies (compare the printed lines).
# The device lacks wcwidth and flatbuffers; prepare here, and carry ["runs/gpu_site"]:
#   mkdir -p runs/gpu_site && cp -r .venv/lib/python3*/site-packages/{wcwidth,flatbuffers} runs/gpu_site/
export PYTHONPATH=$PWD:$PWD/runs/gpu_site PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_smoke}; mkdir -p "$OUT"
nvidia-smi -L; nproc
python3 -c "import torch, numpy, PIL; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
python3 - <<'PY'
import numpy as np
from pathlib import Path
from PIL import Image
rng = np.random.default_rng(0)
for name, rgb in {"red": (200, 40, 40), "green": (40, 180, 60), "blue": (40, 60, 200), "yellow": (220, 210, 40),
                  "grey": (128, 128, 128)}.items():
    (Path("/tmp/smoke") / name).mkdir(parents=True, exist_ok=True)
    for i in range(40):
        px = np.clip(np.array(rgb) + rng.normal(0, 25, (48, 64, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(px).save(f"/tmp/smoke/{name}/{i}.jpg", quality=90)
PY
A="train /tmp/smoke --model mobilenet_v2_0.35_96 --weights none --feature-backend torch --epochs 3 --exist-ok
   --fine-tune all --fine-tune-on-the-fly --fine-tune-epochs 3 --device cuda --workers 4"
status=0
start=$(date +%s)
timeout 150 python3 -m edgeclf $A --out /tmp/r/single > "$OUT/single.log" 2>&1; rc=$?; [ $rc = 0 ] || status=1
echo "single process: exit $rc ($(( $(date +%s) - start )) s)"; tr '\r' '\n' < "$OUT/single.log" | grep -v "it/s\|img/s" | tail -5
start=$(date +%s)
timeout 150 python3 -m torch.distributed.run --standalone --nproc_per_node 1 -m edgeclf $A --out /tmp/r/ddp \
  > "$OUT/ddp.log" 2>&1; rc=$?; [ $rc = 0 ] || status=1
echo "torchrun: exit $rc ($(( $(date +%s) - start )) s)"; tr '\r' '\n' < "$OUT/ddp.log" | grep -v "it/s\|img/s" | tail -5
for r in single ddp; do
  ls /tmp/r/$r/model.pt /tmp/r/$r/metrics.json > /dev/null || status=1
  python3 -c "import json; m = json.load(open('/tmp/r/$r/metrics.json')); print('$r', m['fine_tune'])" || status=1
done
echo "smoke status $status"; exit $status
