"""The int8 export check (issue #14, part 1) on trained runs: validation accuracy float vs int8, agreement, time.

    python bench/int8_check.py RUN_DIR [RUN_DIR ...] [--out bench/int8_check.json]

The runs used for the table in bench/README.md are bench/calibration.py's seed-0 runs
(efficientnet_lite0, mobilenet_v2_1.0_224, defaults, flowers).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main() -> None:
    from edgeclf.workflows.export import export

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--max-drop", type=float, default=1.0)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "int8_check.json"))
    a = ap.parse_args()
    rows = []
    for run in a.runs:
        t = time.perf_counter()
        f = export(run, quantize="int8", max_drop=a.max_drop, verbose=False)
        row = {"run": run, "export_with_check_s": round(time.perf_counter() - t, 1),
               **json.loads(f.with_suffix(".json").read_text())["int8_check"]}
        rows.append(row)
        print(json.dumps(row), flush=True)
    Path(a.out).write_text(json.dumps({"command": "python bench/int8_check.py " + " ".join(sys.argv[1:]),
                                       "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
