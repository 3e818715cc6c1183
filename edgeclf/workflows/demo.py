"""`edgeclf demo`: the whole pipeline on a small dataset it draws itself — no download needed."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ..errors import ConfigError, ModelError

SHAPES = ("circle", "square", "triangle")


def _draw(shape: str, rng: np.random.Generator, size: int = 160) -> Image.Image:
    bg = tuple(int(v) for v in rng.integers(0, 256, 3))
    img = Image.new("RGB", (size, size), bg)
    d = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(0, 4))):  # distractor lines so the task is not trivial
        d.line([tuple(rng.integers(0, size, 2).tolist()) for _ in range(2)],
               fill=tuple(int(v) for v in rng.integers(0, 256, 3)), width=int(rng.integers(1, 4)))
    r = int(rng.integers(size // 6, size // 3))
    cx, cy = (int(v) for v in rng.integers(r, size - r, 2))
    color = tuple(int(v) for v in (255 - np.array(bg) + rng.integers(-40, 40, 3)).clip(0, 255))
    if shape == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=color)
    elif shape == "square":
        d.rectangle([cx - r, cy - r, cx + r, cy + r], fill=color)
    else:
        d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=color)
    img = img.rotate(float(rng.uniform(-30, 30)), fillcolor=bg)
    noise = rng.normal(0, 8, (size, size, 3))
    return Image.fromarray((np.asarray(img, np.float32) + noise).clip(0, 255).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(0.6))


def make_shapes_dataset(root: str | os.PathLike[str], per_class: int = 60, seed: int = 0) -> Path:
    """Write DATA/<shape>/<n>.jpg: circles, squares and triangles on random backgrounds."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for shape in SHAPES:
        folder = root / shape
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            path = folder / f"{shape}_{i:03d}.jpg"
            if not path.exists():
                _draw(shape, rng).save(path, quality=90)
    return root


def demo_dataset(out: Path, per_class: int) -> Path:
    """The demo's dataset in `out`: `data` for the default size, `data_N` for another, so a rerun with another
    --per-class does not train on the images an earlier one left there (it added only the missing ones)."""
    data = out / ("data" if per_class == 60 else f"data_{per_class}")
    others = sorted(d.name for d in data.iterdir() if d.name not in SHAPES) if data.is_dir() else []
    if others:  # the demo's images would be mixed into someone's dataset, and it trained on the mix
        raise ConfigError(f"--out {out}: {data} holds {', '.join(others[:3])}, which the demo did not make; "
                          "choose another --out")
    return make_shapes_dataset(data, per_class)


def demo(out: str | os.PathLike[str] = "edgeclf-demo", model: str = "efficientnet_lite0", per_class: int = 60,
         epochs: int = 30) -> dict[str, Path]:
    """Make a dataset, train, export a .tflite, evaluate the file and benchmark it; returns the paths."""
    from .benchmark import benchmark
    from ..runtime.evaluate import evaluate
    from .export import export
    from ..training.trainer import train

    from .._io import make_dir
    from ..models.zoo import get_spec
    from ..params import POSITIVE_INT, Interval, check, check_path

    check_path("--out", out)
    check("--per-class", per_class, Interval(int, 1, 10_000))
    check("--epochs", epochs, POSITIVE_INT)
    get_spec(model)  # an unknown name fails before 3 x per_class images are drawn
    out = make_dir(out, "--out")
    t0 = time.perf_counter()
    data = demo_dataset(out, per_class)
    print(f"[1/4] dataset   {data} ({len(SHAPES)} classes x {per_class} images)")
    weights = "imagenet"
    try:
        from ..models.weights import locate

        spec = get_spec(model)
        if spec.weights:
            locate(spec.weights, allow_download=False)
    except ModelError as exc:
        print(f"note: {exc}; the demo trains {model} from scratch instead")
        weights = "none"
    print(f"[2/4] train     {model} ({weights} weights)")
    run = train(data, model, out / "run", weights=weights, epochs=epochs)
    print("[3/4] export    .tflite (float32, uint8 input)")
    tfl = export(run, "tflite", "float32")
    print("[4/4] evaluate + benchmark the exported file")
    evaluate(tfl, data, out=out / "eval")
    benchmark([str(tfl)], threads=[1, 2], runs=30, warmup=5)
    print(f"\ndone in {time.perf_counter() - t0:.0f}s")
    print(f"  dataset     {data}")
    print(f"  run dir     {run}  (model.pt, metrics.json, curves.png)")
    print(f"  tflite      {tfl}  (+ labels.txt, {tfl.with_suffix('.json').name})")
    print(f"  evaluation  {out / 'eval'}  (metrics.json, confusion_matrix.png)")
    return {"data": data, "run": run, "tflite": tfl, "eval": out / "eval"}
