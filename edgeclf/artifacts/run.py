"""The run directory: the artifact training writes and export, runtime and workflows read.

model.pt (weights + metadata to rebuild them), manifest.json (config, status), split.json,
metrics.json; nothing else is shared between the stages.
"""

from __future__ import annotations

import io
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._io import read_json, write_bytes, write_json, write_text
from ..errors import EdgeclfError
from ..models.preprocess import Preprocess
from ..models.weights import sha256_file

if TYPE_CHECKING:  # torch loads where model.pt is written or read: evaluating a .tflite file needs neither
    from ..models.builder import Classifier

MODEL_FILE = "model.pt"
MANIFEST = "manifest.json"
SPLIT_FILE = "split.json"


def model_digest(run_dir: str | os.PathLike[str]) -> str | None:
    """SHA-256 of the run's model.pt, which exports record: a file from a model since replaced is told apart."""
    p = Path(run_dir) / MODEL_FILE
    try:
        st = p.stat()
    except OSError:
        return None
    # verify and evaluate ask once per exported file; a model.pt is tens of MB.
    key = (str(p.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = sha256_file(p)
    return _DIGESTS[key]


_DIGESTS: dict[tuple[str, int, int, int], str] = {}


def sidecar_of(model_file: str | os.PathLike[str]) -> Path:
    """Where edgeclf export writes a model file's JSON: NAME.json beside NAME.tflite, NAME.onnx.json beside .onnx."""
    f = Path(model_file)
    # A run's ONNX file and its float32 .tflite share NAME: one NAME.json held whichever was exported last
    # (the .tflite's then said "format": "onnx").
    return f.with_name(f.name + ".json") if f.suffix.lower() == ".onnx" else f.with_suffix(".json")


def find_sidecar(model_file: str | os.PathLike[str]) -> Path:
    """The JSON that describes a model file: sidecar_of(), or NAME.json beside an ONNX file exported before it."""
    own, older = sidecar_of(model_file), Path(model_file).with_suffix(".json")
    return older if not own.is_file() and older.is_file() else own


def _origin(model_file: str | os.PathLike[str]) -> tuple[Path | None, str | None]:
    """(the run an exported file came from, the model.pt digest it was made from), as far as its sidecar tells."""
    try:
        rec = read_json(find_sidecar(model_file))
    except (OSError, ValueError):
        return None, None
    if not isinstance(rec, dict) or not rec.get("run_dir"):
        return None, None
    recorded, made_from = Path(rec["run_dir"]), rec.get("model_sha256")
    if made_from and model_digest(recorded) != made_from:
        # The sidecar holds an absolute path: a run moved whole (its place perhaps taken by a new run) is
        # the one around RUN/export/FILE that holds the same model.pt.
        here = Path(model_file).resolve().parent
        if here.name == "export" and model_digest(here.parent) == made_from:
            return here.parent, made_from
    return (recorded if (recorded / MODEL_FILE).is_file() else None), made_from


def exported_from(model_file: str | os.PathLike[str]) -> Path | None:
    """The run folder an exported file came from: the one its sidecar names, or, when that run was moved
    (the sidecar holds an absolute path), the run around RUN/export/FILE holding the same model.pt."""
    return _origin(model_file)[0]


def is_stale(model_file: str | os.PathLike[str]) -> bool:
    """Whether an exported file was made from another model.pt than its run folder holds now (the run was replaced)."""
    run, made_from = _origin(model_file)
    if run is None or not made_from:
        return False  # exported before files recorded their model: cannot tell
    return model_digest(run) != made_from


def failed_int8_check(model_file: str | os.PathLike[str]) -> str | None:
    """What export's int8 check found if the file failed it (the file is kept, marked in its JSON), else None."""
    f = Path(model_file)
    if not f.is_file():  # a run directory: nothing exported to check
        return None
    try:
        c = read_json(find_sidecar(f)).get("int8_check") or {}
        if c.get("passed", True) or not c.get("checked", True):
            return None
        return (f"{f} failed its int8 check at export: {float(c['drop_points']):.2f} points below the float model on "
                f"the {c.get('split', 'val')} split (> --max-drop {float(c['max_drop']):g}); an app gets this "
                "file's answers: export float16 or dynamic instead")
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return None


def save_model(run_dir: Path, model: Classifier, meta: dict[str, Any]) -> Path:
    """Write model.pt: backbone + head weights and what is needed to rebuild them."""
    import torch

    payload = {"meta": meta, "backbone": model.backbone.state_dict(), "head": model.head.state_dict()}
    buf = io.BytesIO()
    # Serialized in memory, then written by Python: torch's own file writer reports a full disk as
    # a RuntimeError, where write_bytes gives the one-line "free disk space" error.
    torch.save(payload, buf)
    return write_bytes(Path(run_dir) / MODEL_FILE, buf.getvalue())


def write_model_files(run_dir: Path, model: Classifier, spec: Any, classes: list[str], split: dict[str, Any],
                      weights: str, dropout: float, hidden: int, score_threshold: float | None = None) -> Path:
    """model.pt with the metadata that rebuilds it, labels.txt and the split record: all export and evaluate read."""
    meta = {"model": spec.name, "pad": spec.arch.pad, "classes": classes, "preprocess": spec.preprocess.to_dict(),
            "head": {"dropout": dropout, "hidden": hidden, "pool_blocks": model.backbone.pool_blocks}, "weights": weights,
            "features": model.backbone.num_features, "score_threshold": score_threshold}
    path = save_model(run_dir, model, meta)
    write_text(Path(run_dir) / "labels.txt", "\n".join(classes) + "\n")
    write_json(Path(run_dir) / SPLIT_FILE, split)
    return path


def not_a_run(path: str | os.PathLike[str], option: str = "RUN") -> str | None:
    """Why `path` cannot be a run directory when it is a file (an exported one, most likely) or missing; else None."""
    path = Path(path)
    if path.is_file():  # the natural slip: the exported file, not its run
        run = exported_from(path)
        return (f"{option} {path} is a file, not a run directory: pass "
                f"{run if run is not None else 'the run directory it was exported from'}")
    if not path.exists():
        return f"{option} {path} does not exist; pass a run directory that `edgeclf train` wrote"
    return None


def load_run(run_dir: str | os.PathLike[str]) -> tuple[Classifier, dict[str, Any]]:
    """Rebuild the trained classifier of a run directory (eval mode) and its metadata."""
    import torch

    from ..models.builder import Classifier
    from ..models.zoo import get_spec

    run_dir = Path(run_dir)
    path = run_dir / MODEL_FILE
    problem = not_a_run(run_dir)
    if problem:
        raise EdgeclfError(problem)
    if not path.is_file():
        raise EdgeclfError(f"{run_dir} is not a finished edgeclf run (no {MODEL_FILE}); run `edgeclf train` first")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        meta = payload["meta"]
        spec = get_spec(meta["model"])
        if meta.get("pad", spec.arch.pad) != spec.arch.pad:  # weights imported from a TF-padded .tflite
            spec = replace(spec, arch=replace(spec.arch, pad=meta["pad"]))
        backbone = spec.build()
        backbone.set_pool_blocks(meta["head"].get("pool_blocks", 0))  # runs before --pool-blocks have none
        model = Classifier(backbone, len(meta["classes"]), meta["head"]["dropout"], meta["head"]["hidden"])
        model.backbone.load_state_dict(payload["backbone"])
        model.head.load_state_dict(payload["head"])
    except (KeyError, RuntimeError, OSError) as exc:
        raise EdgeclfError(f"{path} is damaged or from another edgeclf version ({exc}); retrain") from None
    return model.eval(), meta


def run_preprocess(meta: dict[str, Any], run_dir: object = "this run") -> Preprocess:
    """The preprocessing recorded in a run's metadata."""
    return Preprocess.from_record(meta["preprocess"], run_dir)


def is_complete(run_dir: str | os.PathLike[str]) -> bool:
    """Whether a run finished (its manifest says so)."""
    p = Path(run_dir) / MANIFEST
    return p.is_file() and read_json(p).get("status") == "complete"


def read_split(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The run's split record: dataset root, percentages, classes and the file list of every split."""
    return read_json(Path(run_dir) / SPLIT_FILE)


def dataset_root(rec: dict[str, Any], data: str | os.PathLike[str] | None = None) -> Path | None:
    """DATA as given, else the dataset folder a split record names (None when it names none)."""
    root = data or rec.get("root")
    return Path(root) if root else None
