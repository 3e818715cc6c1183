#!/bin/bash
# MobileNet V1 0.5_224 fully fine-tuned on a GPU (issue 13): the session's lent H200, one call.
#
# The device gets only the repository, so the flowers photos travel downsized (long side 288 px,
# JPEG q78; same folder and file names, hence the same split) in an ignored .gpu/ folder, with
# the official V1 0.5_160 .tflite and LiteRT's flatbuffer schema module (the device lacks
# ai-edge-litert; the importer needs only that file). Prepare, here:
#   python bench/shrink.py ../shared/datasets/flowers .gpu/flowers 288 78
#   cp ../shared/imagenet_tflite/mobilenet_v1_0.5_160_quant.tflite .gpu/
#   mkdir -p .gpu/site/ai_edge_litert && touch .gpu/site/ai_edge_litert/__init__.py
#   cp .venv/lib/python3*/site-packages/ai_edge_litert/schema_py_generated.py .gpu/site/ai_edge_litert/
# then run this script there (device tool: command "bash bench/mobilenet_v1_gpu.sh", carry [".gpu"]).
# A head-only warm-up fills the feature cache; three on-the-fly fine-tunes run side by side; the
# run directories come back as tarballs, and are exported and evaluated HERE on the original photos:
#   edgeclf export RUN --quantize float32,int8 --calibration-data ../shared/datasets/flowers
#   edgeclf evaluate RUN/export/FILE --data ../shared/datasets/flowers --client mediapipe
export PYTHONPATH=$PWD/.gpu/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi -L; nproc; python3 -c "import torch, numpy, PIL; print(torch.__version__, torch.cuda.is_available(), numpy.__version__, PIL.__version__)"
W=.gpu/mobilenet_v1_0.5_160_quant.tflite; D=.gpu/flowers; C=/tmp/cache
A="train $D --model mobilenet_v1_0.5_224 --weights $W --feature-backend torch --cache-dir $C --exist-ok"
. bench/gpu_runs.sh
fine_tune_side_by_side 40 440 "s0 3e-4 0" "s1 3e-4 1" "hi 6e-4 0"
