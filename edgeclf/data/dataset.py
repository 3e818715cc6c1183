"""Read a folder-of-folders image dataset: classes, files, and their stable split."""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DatasetError
from ..params import POSITIVE_INT, check, check_path
from ..table import short_list
from .images import is_image_file, misnamed_images
from .split import SPLITS, SplitSpec, assign, percentage

_SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                  "test": "test", "testing": "test"}


@dataclass(frozen=True)
class Sample:
    """One image file: its path, class index and split."""

    path: Path
    label: int
    split: str
    rel: str  # path relative to the class folder (pre-split: to the split's class folder)


@dataclass
class Dataset:
    """A scanned dataset: sorted class names and every image with its split."""

    root: Path
    classes: list[str]
    samples: list[Sample]
    layout: str  # "folders" (split by hash) or "presplit" (DATA/{train,val,test}/<class>/)
    spec: SplitSpec
    ignored_hidden: int = 0
    ignored_non_images: list[str] = field(default_factory=list)
    skipped_links: list[str] = field(default_factory=list)  # folder links that loop or leave their class
    val_from_train: bool = False  # pre-split without a val folder: val is hashed out of train (spec.val_percent)
    split_like: str | None = None  # a warning: the class folders look like splits holding the real classes
    look_alike: str | None = None  # a warning: class names that differ only in case, spaces or punctuation
    loose_images: list[str] = field(default_factory=list)  # images in DATA itself, outside every class folder

    def loose_note(self) -> str | None:
        """A warning on images lying in DATA itself (no class folder, so no label), or None."""
        if not self.loose_images:
            return None
        where = f"{self.root}/<its class>/" if self.layout == "folders" else f"{self.root}/<split>/<its class>/"
        return (f"{len(self.loose_images)} image(s) lie outside every class folder, so they were left out (first: "
                f"{self.loose_images[0]}); move each into {where} to use it")

    def notes(self) -> list[str]:
        """The warnings the folder layout and its split raise, for doctor and train alike."""
        return [w for w in (self.split_like, self.look_alike, self.loose_note()) if w] + self.split_gaps()

    def split_gaps(self) -> list[str]:
        """Warnings on a val or test split that is empty or lacks some classes: their accuracy goes unmeasured there."""
        counts, out = self.counts(), []
        for split, percent in (("val", self.spec.val_percent), ("test", self.spec.test_percent)):
            n = sum(c[split] for c in counts.values())
            if not n:
                if percent > 0:
                    where = f" to {self.root}/{split}/<class name>/" if self.layout == "presplit" else ""
                    out.append(f"the {split} split is empty; add images{where}")
                continue
            # Early stopping and calibration (val) or the reported accuracy (test) leave these classes out.
            missing = [c for c in self.classes if not counts[c][split]]
            if missing:
                fix = (f"add images to their folders in the {split} split" if self.layout == "presplit"
                       else f"add images or raise --{split}-percent")
                if split == "val" and self.val_from_train:  # hashed out of train/: no val folder to fill
                    fix = "add images to their train folders or raise --val-percent"
                out.append(f"{len(missing)} class(es) have no {split} image ({short_list(missing)}): their accuracy "
                           f"is not measured there; {fix}")
        return out

    def split(self, name: str) -> list[Sample]:
        """Samples of one split ('train', 'val' or 'test')."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; use one of {', '.join(SPLITS)}")
        return [s for s in self.samples if s.split == name]

    def name(self, s: Sample) -> str:
        """How the split record names a sample: 'class/relative path', or its path under DATA when pre-split."""
        if self.layout == "presplit":  # train/cat/1.jpg and test/cat/1.jpg are two photos: the folder tells them apart
            return label_form(Path(os.path.relpath(s.path, self.root)).as_posix())
        return f"{self.classes[s.label]}/{s.rel}"

    def recorded(self, split: str, record: dict) -> list[Sample]:
        """The samples a run's split record lists for `split` (its own files, not a re-hash); for a folder that is not
        the run's dataset (a held-out set), its hashed split."""
        files = record.get("files", {})
        listed = {label_form(n) for n in files.get(split, [])}  # runs recorded before NFC
        mine = [s for s in self.samples if self.name(s) in listed]
        if mine:
            return mine
        # The run's own dataset (most of its recorded photos here; a held-out folder shares a name or two at most)
        # whose record holds no image in this split, e.g. a pre-split run without val/ from before val was hashed
        # out of train/: none, not the split hashed today, which would hold the run's training photos.
        everything = {label_form(n) for names in files.values() for n in names}
        if everything and 2 * sum(self.name(s) in everything for s in self.samples) >= len(everything):
            return []
        return self.split(split)

    def counts(self) -> dict[str, dict[str, int]]:
        """Image counts as {class: {split: n, ..., 'total': n}}."""
        table = {c: {s: 0 for s in SPLITS} for c in self.classes}
        for s in self.samples:
            table[self.classes[s.label]][s.split] += 1
        for row in table.values():
            row["total"] = sum(row[s] for s in SPLITS)
        return table

    def split_record(self) -> dict:
        """A JSON-able record of the split, written into a run so evaluation can recompute it."""
        return {
            "root": os.path.abspath(self.root),  # the run is used from other folders than the one it was trained in
            "layout": self.layout,
            **({"val_from_train": True} if self.val_from_train else {}),
            "val_percent": self.spec.val_percent,
            "test_percent": self.spec.test_percent,
            "classes": self.classes,
            "fingerprint": self.fingerprint(),
            "files": {sp: sorted(self.name(s) for s in self.samples if s.split == sp)
                      for sp in SPLITS},
        }

    def fingerprint(self) -> str:
        """A hash of class names, relative paths, sizes and mtimes: changes when the dataset changes."""
        h = hashlib.sha256()
        for s in sorted(self.samples, key=lambda s: (s.label, s.rel)):
            st = s.path.stat()
            h.update(f"{self.classes[s.label]}/{s.rel}|{st.st_size}|{int(st.st_mtime)}\n".encode())
        return h.hexdigest()[:16]


def label_form(name: str) -> str:
    """A class or file name as edgeclf records it: Unicode NFC.

    macOS file systems and zips made there store 'café' decomposed (NFD): as a label that string
    differs from the 'café' an app's code holds, and the same dataset would name (and so split)
    its files differently on a Mac and on Linux.
    """
    return unicodedata.normalize("NFC", name)


def _hidden(name: str) -> bool:
    return name.startswith(".") or name.startswith("__")


def _loose_images(folder: Path) -> list[Path]:
    """Image files directly in `folder` (not below it)."""
    return [p for p in folder.iterdir() if p.is_file() and is_image_file(p.name) and not _hidden(p.name)]


def _walk_images(folder: Path, links: list[str] | None = None) -> tuple[list[Path], int, list[str]]:
    """Image files at any depth below `folder`, sorted; also counts hidden and non-image files.

    Symlinked folders are followed only inside `folder`'s own real tree and each real folder once:
    a link back up (``a/loop -> ..``), into another class or out of the dataset would count photos
    twice or under the wrong label. Skipped links are appended to `links` as 'path -> target'.
    """
    images: list[Path] = []
    hidden = 0
    others: list[str] = []
    base = folder.resolve()
    seen: set[Path] = set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = Path(dirpath).resolve()
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        hidden += sum(1 for d in dirnames if _hidden(d))
        keep = []
        for d in sorted(d for d in dirnames if not _hidden(d)):
            p = Path(dirpath) / d
            if p.is_symlink():
                target = p.resolve()
                if target in seen or target == real or target in real.parents or not (
                        target == base or base in target.parents):
                    if links is not None:
                        links.append(f"{p} -> {os.readlink(p)}")
                    continue
            keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if _hidden(name):
                hidden += 1
            elif is_image_file(name):
                images.append(path)
            else:
                others.append(str(path))
    return images, hidden, others


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not _hidden(p.name))


def _check_root(root: Path) -> None:
    if not root.exists():
        raise DatasetError(f"dataset folder {root} does not exist; pass a folder with one sub-folder per class")
    if not root.is_dir():
        raise DatasetError(f"{root} is a file, not a folder; pass a folder with one sub-folder per class")


def _is_utf8(name: str) -> bool:
    """Whether a name read from the file system is valid UTF-8 (undecodable bytes come back as surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _raw(name: str) -> str:
    """A file-system name that is not UTF-8, shown as its bytes (printing it as text would fail)."""
    return repr(name.encode("utf-8", "surrogateescape"))


def _is_presplit(dirs: list[Path]) -> bool:
    names = {d.name.lower() for d in dirs}
    return bool(dirs) and names <= set(_SPLIT_ALIASES) and "train" in {_SPLIT_ALIASES[n] for n in names}


def scan(root: str | os.PathLike[str], val_percent: float = 10.0, test_percent: float = 10.0,
         min_classes: int = 2) -> Dataset:
    """Scan DATA/<class>/... (split by hash) or DATA/{train,val,test}/<class>/... (split as given).

    `min_classes` is 2 to train; a folder to evaluate on may hold photos of one class only (new
    photos of one product, to see how many the model names right).
    """
    root = Path(check_path("DATA", root)).expanduser()
    check("min_classes", min_classes, POSITIVE_INT)
    _check_root(root)
    spec = SplitSpec(val_percent, test_percent)
    dirs = _subdirs(root)
    hidden = 0
    others: list[str] = []
    strays: list[str] = []  # images in DATA itself: no class folder, so no label
    links: list[str] = []
    per_class: dict[str, list[tuple[Path, str, str | None]]] = {}
    folder: dict[str, Path] = {}  # class name -> its folder (the name is NFC, the folder's may not be)
    if _is_presplit(dirs):
        layout = "presplit"
        for split_dir in [root, *dirs]:  # images in DATA or DATA/train itself have no class folder
            strays += [str(p) for p in sorted(split_dir.iterdir())
                       if p.is_file() and not _hidden(p.name) and is_image_file(p)]
        for split_dir in dirs:
            split = _SPLIT_ALIASES[split_dir.name.lower()]
            for cdir in _subdirs(split_dir):
                files, h, o = _walk_images(cdir, links)
                hidden, others = hidden + h, others + o
                per_class.setdefault(label_form(cdir.name), []).extend(
                    (f, label_form(f.relative_to(cdir).as_posix()), split) for f in files)
    else:
        layout = "folders"
        for cdir in dirs:
            files, h, o = _walk_images(cdir, links)
            hidden, others = hidden + h, others + o
            name = label_form(cdir.name)
            folder.setdefault(name, cdir)
            per_class.setdefault(name, []).extend((f, label_form(f.relative_to(cdir).as_posix()), None) for f in files)
        loose = [p for p in sorted(root.iterdir()) if p.is_file() and not _hidden(p.name)]
        others += [str(p) for p in loose if not is_image_file(p)]
        strays = [str(p) for p in loose if is_image_file(p)]
    if not per_class and layout == "presplit":  # e.g. classes that happen to be called "train" and "test"
        names = ", ".join(d.name + "/" for d in dirs)
        train = next(d.name for d in dirs if _SPLIT_ALIASES[d.name.lower()] == "train")
        raise DatasetError(f"{root} looks pre-split ({names}) but those folders hold no class folders; put images "
                           f"in {root}/{train}/<class name>/, or rename the folders if they are classes")
    if not per_class:
        hint = ""
        images = _loose_images(root)
        parent = root.resolve().parent
        siblings = _subdirs(parent)
        # DATA/pikachu given for DATA: most folders beside it hold images the same way (a folder of runs,
        # datasets and downloads does not, and gets no advice).
        if images and 2 <= sum(1 for d in siblings if _loose_images(d)) > len(siblings) / 2:
            above = root.parent if root.name not in ("", ".", "..") else parent
            hint = (f"; {root} holds {len(images)} image{'s' * (len(images) != 1)} itself, like one class folder: "
                    f"to train on its classes, pass the folder above it ({above})")
        raise DatasetError(f"{root} has no class sub-folders; put images in {root}/<class name>/ (one folder per "
                           f"class){hint or _label_list_hint(root)}")
    empty = [c for c, files in per_class.items() if not files]
    if empty:
        where = folder[empty[0]] if layout == "folders" else f"{root}/*/{empty[0]}"
        # A link the walk refused is the likely reason: say so, or the user sees photos there and no cause.
        depth = 0 if layout == "folders" else 1  # the class is the first part below DATA, or below DATA/<split>
        link = next((ln for ln in links
                     if label_form(Path(ln.split(" -> ")[0]).relative_to(root).parts[depth]) == empty[0]),
                    None)
        why = (f"; the folder link {link} is not followed (it leaves the class folder): copy the photos in, "
               f"or make {where} itself the link" if link else "")
        if not why and layout == "folders":
            named = misnamed_images([o for o in others if label_form(Path(o).relative_to(root).parts[0]) == empty[0]])
            why = f"; {named}" if named else ""
        raise DatasetError(f"class folder {where} has no images ({len(empty)} empty class folder(s)); "
                           f"add images to it or remove it{why}")
    bad = next((c for c in sorted(per_class) if any(ord(ch) < 32 or ord(ch) == 127 for ch in c)), None)
    if bad is not None:  # labels.txt and the model's label file hold one name per line
        raise DatasetError(f"class folder {bad!r} in {root} has a line break or control character in its name; "
                           "labels are one per line, so rename the folder")
    # Labels, split.json, hashes and reports are UTF-8: a name in another encoding (a zip made on another
    # system) is refused here, once, instead of crashing whichever of them meets it first.
    undecodable = next((c for c in sorted(per_class) if not _is_utf8(c)), None)
    if undecodable is not None:
        raise DatasetError(f"class folder {_raw(undecodable)} in {root} is not a UTF-8 name (unzipped with another "
                           "encoding?); rename it, e.g. `convmv -f latin1 -t utf8 -r --notest DATA`")
    odd = next((f"{c}/{rel}" for c in sorted(per_class) for _, rel, _ in per_class[c] if not _is_utf8(rel)), None)
    if odd is not None:
        raise DatasetError(f"file {_raw(odd)} in {root} has a name that is not UTF-8 (unzipped with another "
                           "encoding?); rename it, e.g. `convmv -f latin1 -t utf8 -r --notest DATA`")
    if len(per_class) < min_classes:
        only = next(iter(per_class))
        hint = ""
        if layout == "folders":  # an archive that unpacks to DATA/flower_photos/<class>/: the classes sit one deeper
            inner = [d.name for d in _subdirs(folder[only]) if _walk_images(d)[0]]
            if len(inner) >= 2:
                hint = (f"; {folder[only]} holds {len(inner)} folders of images ({short_list(inner)}): "
                        f"if those are the classes, pass {folder[only]} as DATA")
        raise DatasetError(f"{root} has a single class ({only!r}); a classifier needs at least 2 class folders"
                           f"{hint or _label_list_hint(root)}")
    classes = sorted(per_class)
    # train/ and test/ but no val/ (Kaggle's usual layout): without validation there is no early stopping,
    # calibration or "unknown" threshold, so --val-percent of train/ validates, hashed as a folders layout is
    # (Model Maker's data.split(0.9), Keras' validation_split). A class keeps at least one training photo.
    val_from_train = layout == "presplit" and spec.val_percent > 0 and not any(
        sp == "val" for files in per_class.values() for _, _, sp in files)
    samples: list[Sample] = []
    for label, cname in enumerate(classes):
        files = per_class[cname]
        splits = [split or assign(f"{cname}/{rel}", spec) for _, rel, split in files]
        if val_from_train:
            train_idx = [i for i, sp in enumerate(splits) if sp == "train"]
            carved = [i for i in train_idx if percentage(f"{cname}/{files[i][1]}") < spec.val_percent]
            for i in carved[:len(train_idx) - 1]:
                splits[i] = "val"
        hashed = [i for i, (_, _, split) in enumerate(files) if split is None]
        if hashed and "train" not in splits:
            # A class absent from training cannot be learned: its hashed file nearest the train
            # range trains instead (a lone image, or 2-3 that all hashed into val/test).
            splits[max(hashed, key=lambda i: percentage(f"{cname}/{files[i][1]}"))] = "train"
        samples += [Sample(path=path, label=label, split=sp, rel=rel) for (path, rel, _), sp in zip(files, splits)]
    return Dataset(root=root, classes=classes, samples=samples, layout=layout, spec=spec,
                   ignored_hidden=hidden, ignored_non_images=others, skipped_links=links, val_from_train=val_from_train,
                   split_like=_split_like(folder) if layout == "folders" else None, look_alike=_look_alike(classes),
                   loose_images=strays)


def _label_list_hint(root: Path) -> str:
    """For a Kaggle-style dataset labelled by a CSV (train.csv + images/): where edgeclf reads labels from."""
    lists = sorted(p.name for p in root.iterdir() if p.is_file() and p.suffix.lower() in (".csv", ".tsv"))
    if not lists:
        return ""
    return (f"; {lists[0]} looks like a list of labels: edgeclf reads each image's label from the name of its "
            f"folder, so put (or link) each image in {root}/<its label>/ first")


def name_key(name: str) -> str:
    """A class name without case, spaces or punctuation: 'Sun flowers ' and 'sunflowers' share one."""
    return "".join(ch for ch in label_form(name).casefold() if ch.isalnum())


def _look_alike(classes: list[str]) -> str | None:
    """A warning naming class folders that differ only in case, spaces or punctuation ('Cat' and 'cat', 'dog ').

    Sorted by hand on several machines, or made by a script and by hand, one class ends up in two folders:
    trained as two classes, each is the other's most confident mistake.
    """
    groups: dict[str, list[str]] = {}
    for c in classes:
        groups.setdefault(name_key(c), []).append(c)
    twins = [g for k, g in groups.items() if len(g) > 1 and k]
    if not twins:
        return None
    shown = "; ".join(" and ".join(repr(c) for c in g) for g in twins[:3]) + (
        f" and {len(twins) - 3} more group(s)" if len(twins) > 3 else "")
    return (f"class folders differ only in case, spaces or punctuation ({shown}): the same class twice? They train "
            "as separate classes; merge each group into one folder")


def _split_like(folder: dict[str, Path]) -> str | None:
    """A warning when the class folders are named as splits: one for training, one for testing or validation.

    Kaggle's Intel set unpacks to seg_train/seg_train/<6 classes>/ and seg_test/...: read as classes,
    seg_train and seg_test train a split detector, without a word. A folders layout's own classes
    are hardly ever named so (a 'train' class beside a 'bus' class is not a 'test' one), so the
    names, not the sub-folders, decide; still a warning, not a refusal.
    """
    def named(words: str) -> list[str]:
        return [c for c in sorted(folder) if re.search(rf"(^|[^a-z])({words})([^a-z]|$)", c.lower())]

    train, held = named("train|training"), named("test|testing|val|valid|validation|eval")
    if not train or not held:
        return None
    return (f"class folders {', '.join(train + held)} are named as splits: if they hold the classes, pass one as "
            f"DATA, or rename them train/ and test/ (and val/) for edgeclf to read them as splits")


def class_counts(samples: list[Sample], n_classes: int) -> list[int]:
    """Number of samples per class index."""
    c = Counter(s.label for s in samples)
    return [c.get(i, 0) for i in range(n_classes)]
