"""Scout (issue #14, part 1): does a head trained to answer the same on int8-backbone features make int8 agree?

    python bench/int8_aware_head.py RUN [--seeds 5] [--out bench/int8_aware_head.json]

RUN is a default `edgeclf train flowers --seed 0` run. The backbone alone (normalization folded in,
as export does it) is quantized by ai-edge-quantizer on the same 100 calibration images `export`
uses, so its int8 features are the ones the exported file's head receives. On the plain crops of
train/val/test, heads (dropout 0.5 → 512 → ReLU → dropout 0.5 → classes, AdamW 1e-3, label
smoothing 0.1, 30 epochs, best validation epoch) are trained with:
  plain    cross-entropy on float features;
  aug      half of it on the int8 features instead (int8 error as augmentation);
  klW      cross-entropy + W x KL(head(float) || head(int8)) (the float answer without dropout, held fixed).
Agreement = top-1 of head(float features) vs head(int8 features), on validation and test; it is
the exported file's agreement minus the head's own int8 error (which the run's own head shows).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics as st
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def features(run: Path) -> dict[str, np.ndarray]:
    """Float and int8-backbone features (and labels) of the run's recorded train/val/test plain crops."""
    from edgeclf.artifacts.run import load_run, read_split, run_preprocess
    from edgeclf.data.crops import Crops, plain
    from edgeclf.data.dataset import scan
    from edgeclf.exporting.exporter import calibration_images
    from edgeclf.exporting.fold import fold_normalization
    from edgeclf.exporting.tflite import quantize_tflite
    from edgeclf.litert import convert, open_interpreter

    model, meta = load_run(run)
    pre = run_preprocess(meta, run)
    folded, m0, s0 = fold_normalization(model, pre)

    class Backbone(torch.nn.Module):
        def __init__(self, b: torch.nn.Module) -> None:
            super().__init__()
            self.b = b

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(x.permute(0, 3, 1, 2))

    fb = convert(Backbone(folded.backbone).eval(), torch.zeros(1, pre.size, pre.size, 3))
    cal = calibration_images(run, pre, 100)
    qb = quantize_tflite(fb, "int8", (cal.astype(np.float32) - m0) / s0)

    def infer(model_bytes: bytes, u: np.ndarray) -> np.ndarray:
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "m.tflite").write_bytes(model_bytes)
            it = open_interpreter(Path(tmp) / "m.tflite", 2)
        inp, out = it.get_input_details()[0], it.get_output_details()[0]
        (si, zi), (so, zo) = inp["quantization"], out["quantization"]
        rows = []
        for x in u:
            x = x[None]
            if inp["dtype"] != np.float32:
                x = np.clip(np.round(x / si + zi), -128, 127).astype(inp["dtype"])
            it.set_tensor(inp["index"], x)
            it.invoke()
            r = it.get_tensor(out["index"])[0].astype(np.float32)
            rows.append(r if out["dtype"] == np.float32 else (r - zo) * so)
        return np.array(rows)

    rec = read_split(run)
    ds = scan(Path(rec["root"]), rec["val_percent"], rec["test_percent"])
    res: dict[str, np.ndarray] = {}
    for sp in ("train", "val", "test"):
        ss = ds.recorded(sp, rec)
        u = (np.stack([Crops(pre)(plain(str(s.path)))[0] for s in ss]).astype(np.float32) - m0) / s0
        res.update({f"{sp}_F": infer(fb, u), f"{sp}_F8": infer(qb, u), f"{sp}_y": np.array([s.label for s in ss])})
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "int8_aware_head.json")
    a = ap.parse_args()
    from edgeclf.artifacts.run import load_run

    t0 = time.time()
    d = {k: torch.tensor(v) for k, v in features(a.run).items()}
    t_feat = time.time() - t0
    tr, tr8, ytr = d["train_F"], d["train_F8"], d["train_y"].long()
    k = int(ytr.max()) + 1

    def evaluate(h: torch.nn.Module) -> dict[str, float]:
        h.eval()
        with torch.no_grad():
            p = {sp: (h(d[f"{sp}_F"]).argmax(1), h(d[f"{sp}_F8"]).argmax(1)) for sp in ("val", "test")}
        r = {}
        for sp, (pf, p8) in p.items():
            y = d[f"{sp}_y"]
            r[f"{sp}_acc_float"] = (pf == y).float().mean().item()
            r[f"{sp}_acc_int8"] = (p8 == y).float().mean().item()
            r[f"{sp}_agreement"] = (pf == p8).float().mean().item()
            r[f"{sp}_disagree"] = int((pf != p8).sum())
        return r

    def fit(mode: str, w: float, seed: int) -> torch.nn.Module:
        torch.manual_seed(seed)
        h = torch.nn.Sequential(torch.nn.Dropout(0.5), torch.nn.Linear(tr.shape[1], 512), torch.nn.ReLU(),
                                torch.nn.Dropout(0.5), torch.nn.Linear(512, k))
        opt = torch.optim.AdamW(h.parameters(), lr=1e-3, weight_decay=1e-4)
        best, state = -1.0, None
        for _ in range(30):
            h.train()
            for idx in torch.randperm(len(tr)).split(32):
                x, x8, y = tr[idx], tr8[idx], ytr[idx]
                loss = F.cross_entropy(h(x), y, label_smoothing=0.1)
                if mode == "aug":
                    loss = 0.5 * loss + 0.5 * F.cross_entropy(h(x8), y, label_smoothing=0.1)
                elif mode == "kl":
                    h.eval()
                    with torch.no_grad():
                        target = F.softmax(h(x), 1)
                    h.train()
                    loss = loss + w * F.kl_div(F.log_softmax(h(x8), 1), target, reduction="batchmean")
                opt.zero_grad()
                loss.backward()
                opt.step()
            h.eval()
            with torch.no_grad():
                acc = (h(d["val_F"]).argmax(1) == d["val_y"]).float().mean().item()
            if acc > best:
                best, state = acc, {n: v.clone() for n, v in h.state_dict().items()}
        h.load_state_dict(state)
        return h

    run_head = evaluate(load_run(a.run)[0].head)
    print("run's own head (4 views):", {n: round(v, 4) for n, v in run_head.items()}, flush=True)
    rows = []
    for name, mode, w in (("plain", "ce", 0.0), ("aug", "aug", 0.0), ("kl0.5", "kl", 0.5), ("kl1", "kl", 1.0),
                          ("kl2", "kl", 2.0)):
        for s in range(a.seeds):
            with contextlib.redirect_stdout(io.StringIO()):
                rows.append({"head": name, "seed": s, **evaluate(fit(mode, w, s))})
        rs = [r for r in rows if r["head"] == name]
        print(f"{name:6s} " + "  ".join(f"{m} {st.mean(r[m] for r in rs):.4f}" for m in
                                         ("val_acc_float", "test_acc_float", "test_acc_int8", "val_agreement",
                                          "test_agreement"))
              + f"  test disagreements per seed {[r['test_disagree'] for r in rs]}", flush=True)
    a.out.write_text(json.dumps({"run": str(a.run), "features_s": round(t_feat, 1), "run_head": run_head,
                                 "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
