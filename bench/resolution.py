"""Scout (issue #17): does EfficientNet-Lite0 transfer better from a larger input than its 224 px?

    python bench/resolution.py RUN [--sizes 224,256,288] [--out bench/resolution.json]

RUN is a default Lite0 run on flowers (its split and backbone are used). For each size, plain
(unaugmented) features of every photo are computed by the PyTorch backbone at size x size
(squash, as the default), then a hidden-512, dropout-0.5 head is trained for seeds 0-3; the
validation mean is what would choose (test is shown, never used to choose). The backbone is
fully convolutional, so only the input grows; its MACs grow with the square of the size.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--sizes", default="224,256,288")
    ap.add_argument("--seeds", default="0,1,2,3")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "resolution.json")
    a = ap.parse_args()
    from edgeclf.artifacts.run import load_run, read_split, run_preprocess
    from edgeclf.data.crops import Crops, plain
    from edgeclf.data.dataset import scan
    from edgeclf.training.head import HeadConfig, train_head

    torch.set_num_threads(2)
    model, meta = load_run(a.run)
    pre0, rec = run_preprocess(meta, a.run), read_split(a.run)
    ds = scan(Path(rec["root"]), rec["val_percent"], rec["test_percent"])
    model.eval()
    out: dict = {"run": str(a.run), "rows": []}
    for size in (int(s) for s in a.sizes.split(",")):
        pre, t = replace(pre0, size=size), time.time()
        feats, ys = {}, {}
        for sp in ("train", "val", "test"):
            paths = [str(s.path) for s in ds.recorded(sp, rec)]
            with ThreadPoolExecutor(2) as ex:
                imgs = list(ex.map(lambda p: Crops(pre)(plain(p))[0], paths))
            with torch.no_grad():
                feats[sp] = np.concatenate([model.backbone(pre.normalize(np.stack(imgs[i:i + 32]))).numpy()
                                            for i in range(0, len(imgs), 32)])
            ys[sp] = np.array([s.label for s in ds.recorded(sp, rec)])
        extract_s = time.time() - t
        for seed in (int(s) for s in a.seeds.split(",")):
            head = train_head(feats["train"], ys["train"], feats["val"], ys["val"], len(ds.classes),
                              HeadConfig(hidden=512, dropout=0.5, seed=seed)).head.eval()
            with torch.no_grad():
                acc = {sp: float((head(torch.from_numpy(feats[sp])).argmax(1).numpy() == ys[sp]).mean())
                       for sp in ("val", "test")}
            out["rows"].append({"size": size, "seed": seed, **acc, "extract_s": round(extract_s, 1)})
        rs = [r for r in out["rows"] if r["size"] == size]
        print(f"{size} px: val {statistics.mean(r['val'] for r in rs):.4f}  "
              f"test {statistics.mean(r['test'] for r in rs):.4f}  (features {extract_s:.0f} s)", flush=True)
        a.out.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
