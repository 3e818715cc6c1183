"""Peak memory and time of `edgeclf doctor` as the dataset grows (issue #15, datasets past 100k).

    python bench/doctor_scale.py [--model mobilenet_v2_1.0_224] [--sizes 5000,20000,50000] [--work /tmp/edgeclf-scale]

Uses bench/scale.py's generated 10-class set of 224 px JPEGs (random crops of the flowers photos,
re-coloured per class; the smaller sizes are symlink subsets). Each size runs `python -m edgeclf
doctor DATA --model M --json` twice in a fresh process: cold (empty feature cache; the backbone's
.tflite converted once beforehand and copied in) and warm. Peak RSS (VmHWM) of the process and of
its whole tree (decode workers included) are sampled every 50 ms. Writes bench/doctor_scale.json
(or --out).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from scale import generate, measure, subset  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="mobilenet_v2_1.0_224")
    ap.add_argument("--sizes", default="5000,20000,50000")
    ap.add_argument("--work", type=Path, default=Path("/tmp/edgeclf-scale"))
    ap.add_argument("--full", type=int, default=50000, help="images generated; smaller sizes are its subsets")
    ap.add_argument("--code", type=Path, default=ROOT, help="the edgeclf checkout to run (a baseline worktree)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "doctor_scale.json")
    ap.add_argument("--no-warm", action="store_true", help="cold runs only")
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]
    full = generate(a.work / "data" / f"n{a.full}", a.full)
    env = dict(os.environ, PYTHONPATH=str(a.code))
    os.chdir(a.code)  # `python -m edgeclf` finds the package in the working directory first
    cmd = [sys.executable, "-m", "edgeclf", "doctor", "--model", a.model, "--json"]
    seed = a.work / "doctor-cache-seed"
    if not (seed / "backbones").is_dir():  # the converter's peak does not grow with the data: pay it once
        shutil.rmtree(seed, ignore_errors=True)
        subprocess.run([*cmd, str(subset(full, a.work / "data" / "n100", 100))], check=True,
                       stdout=subprocess.DEVNULL, env=dict(env, EDGECLF_FEATURE_CACHE=str(seed)))
    rows = []
    for n in sizes:
        data = full if n == a.full else subset(full, a.work / "data" / f"n{n}", n)
        cache = a.work / f"doctor-cache-{n}"
        shutil.rmtree(cache, ignore_errors=True)
        shutil.copytree(seed / "backbones", cache / "backbones")
        for temp in ("cold",) if a.no_warm else ("cold", "warm"):
            log = a.work / f"doctor-{n}-{temp}.json"
            os.environ.update(PYTHONPATH=str(a.code), EDGECLF_FEATURE_CACHE=str(cache))
            r = measure([*cmd, str(data)], log)
            text = log.read_text()  # stdout and stderr together: the report is the one JSON object
            rep = json.loads(text[text.index("{\n"):text.rindex("\n}") + 2])
            r.update(images=n, cache=temp, near_groups=len(rep["near_duplicates"]),
                     outliers=len(rep["outliers"] or []))
            rows.append(r)
            print(r, flush=True)
        shutil.rmtree(cache, ignore_errors=True)
    result = {"model": a.model, "cpus": os.cpu_count(), "code": str(a.code), "runs": rows,
              "command": "python bench/doctor_scale.py " + " ".join(sys.argv[1:])}
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'images':>7} {'cache':>6} {'wall s':>7} {'peak RSS MiB':>13} {'tree RSS MiB':>13}")
    for r in rows:
        print(f"{r['images']:>7} {r['cache']:>6} {r['wall_s']:>7} {r['peak_rss_mib']:>13} {r['peak_tree_rss_mib']:>13}")


if __name__ == "__main__":
    main()
