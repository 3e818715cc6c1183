"""Every kind of bad input gets a clear reason, and the run goes on."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import encode, make_dataset, photo, png_header_only
from edgeclf.data.dataset import scan
from edgeclf.data.doctor import diagnose
from edgeclf.data.images import ImageDecodeError, load_rgb
from edgeclf.errors import DatasetError


def _corrupt_middle(data: bytes) -> bytes:
    mid = len(data) // 2
    return data[:mid] + bytes(np.random.default_rng(0).integers(0, 256, 200, dtype=np.uint8)) + data[mid + 200:]


def _bad_files() -> dict[str, tuple[bytes, str]]:
    img = photo(1, (200, 150))
    jpg, png = encode(img, "JPEG"), encode(img, "PNG")
    gif, webp = encode(img.convert("P"), "GIF"), encode(img, "WEBP")
    tif, bmp = encode(img, "TIFF"), encode(img, "BMP")
    return {
        "zero_byte.jpg": (b"", "empty file"),
        "truncated.jpg": (jpg[: len(jpg) // 2], "truncated"),
        "header_only.jpg": (jpg[:300], "truncated"),
        "truncated.png": (png[: len(png) // 2], "truncated"),
        "random_bytes.jpg": (os.urandom(500), "not an image"),
        "text.png": (b"I am not an image\n" * 10, "not an image"),
        "bad_magic.jpg": (b"\x00\x00" + jpg[2:], "not an image"),
        "bomb.png": (png_header_only(30000, 30000), "too large"),
        "zero_size.png": (png_header_only(0, 0), "not an image"),
        "garbled.png": (_corrupt_middle(png), "corrupt"),
        "truncated.gif": (gif[: len(gif) // 3], "truncated"),
        "truncated.webp": (webp[: len(webp) // 2], "corrupt"),
        "truncated.tif": (tif[: len(tif) // 2], "truncated"),
        "truncated.bmp": (bmp[: len(bmp) // 2], "truncated"),
    }


BAD = _bad_files()


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_file_reason(tmp_path: Path, name: str) -> None:
    data, reason = BAD[name]
    p = tmp_path / name
    p.write_bytes(data)
    with pytest.raises(ImageDecodeError) as exc:
        load_rgb(p)
    assert reason in exc.value.reason
    assert str(p) in str(exc.value)


def test_200_megapixel_phone_photo_is_not_a_bomb(tmp_path: Path) -> None:
    # Galaxy S-Ultra sensors write 16320x12240 JPEGs; a limit at 150 MP refused them as "decompression bomb?".
    p = tmp_path / "s24_ultra.jpg"
    Image.new("RGB", (16320, 12240), (120, 30, 200)).save(p, quality=80)
    img = load_rgb(p, min_side=224)
    assert min(img.size) >= 224 and img.getpixel((0, 0))[2] > 150


def test_folder_and_broken_link(tmp_path: Path) -> None:
    (tmp_path / "folder.jpg").mkdir()
    os.symlink(tmp_path / "missing.jpg", tmp_path / "broken.jpg")
    with pytest.raises(ImageDecodeError, match="is a folder"):
        load_rgb(tmp_path / "folder.jpg")
    with pytest.raises(ImageDecodeError, match="cannot read file"):
        load_rgb(tmp_path / "broken.jpg")


def test_doctor_reports_every_bad_file_and_continues(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "data", {"a": 10, "b": 10})
    for name, (blob, _) in BAD.items():
        (data / "a" / name).write_bytes(blob)
    os.symlink(data / "a" / "missing.jpg", data / "b" / "broken.jpg")
    (data / "a" / ".DS_Store").write_bytes(b"junk")
    (data / "b" / "notes.txt").write_text("not an image")
    r = diagnose(data, workers=2)
    reasons = {Path(u["path"]).name: u["reason"] for u in r["unreadable"]}
    for name, (_, reason) in BAD.items():
        assert reason in reasons[name], (name, reasons.get(name))
    assert "cannot read file" in reasons["broken.jpg"]
    assert r["n_images"] == 20 + len(BAD) + 1  # bad files are counted, then reported
    assert r["ignored"] == {"hidden": 1, "non_images": 1, "non_image_examples": [str(data / "b" / "notes.txt")],
                            "folder_links": [], "unreadable_photos": [], "misnamed_images": None,
                            "loose_images": []}
    assert any("unreadable" in w for w in r["warnings"])


def test_training_features_skip_bad_images(tmp_path: Path) -> None:
    from edgeclf.models.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess
    from edgeclf.models.zoo import get_spec
    from edgeclf.training.backends import torch_backend
    from edgeclf.training.features import FeatureCache, extract

    good = tmp_path / "good.jpg"
    photo(3).save(good)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(BAD["truncated.jpg"][0])
    backbone = get_spec("mobilenet_v2_0.35_96").build().eval()
    pre = Preprocess(96, IMAGENET_MEAN, IMAGENET_STD)
    feats, hashes, skipped = extract(lambda: torch_backend(backbone, pre), pre, [str(bad), str(good)],
                                     {0: FeatureCache(tmp_path / "cache", "k")}, workers=1)
    feats = feats[0].numpy()
    assert list(skipped) == [str(bad)] and "truncated" in skipped[str(bad)]
    assert hashes[0] is None and hashes[1] is not None
    assert feats.shape == (2, backbone.num_features) and np.abs(feats[1]).sum() > 0


@pytest.mark.parametrize("setup,message", [
    (lambda root: None, "does not exist"),
    (lambda root: root.write_text("x"), "is a file, not a folder"),
    (lambda root: root.mkdir(), "no class sub-folders"),
    (lambda root: make_dataset(root, {"only": 3}), "single class"),
    # an archive unpacked one level too deep (flower_photos/<class>/): the message points at the real DATA
    (lambda root: make_dataset(root / "flower_photos", {"daisy": 3, "roses": 3}),
     "holds 2 folders of images (daisy, roses): if those are the classes, pass"),
    (lambda root: (make_dataset(root, {"a": 3, "b": 3}), (root / "empty").mkdir()), "has no images"),
    # labels.txt holds one name per line: this class would have become two labels
    (lambda root: make_dataset(root, {"a": 3, "two\nlines": 3}), "'two\\nlines' in"),
    # names in another encoding (a zip from another system): refused once, not a UnicodeEncodeError in the split hash
    (lambda root: (make_dataset(root, {"a": 3, "b": 3}), os.rename(root / "b", os.fsencode(root) + b"/caf\xe9")),
     "class folder b'caf\\xe9' in"),
    (lambda root: (make_dataset(root, {"a": 3, "b": 3}),
                   os.rename(root / "b" / "img_000.jpg", os.fsencode(root) + b"/b/na\xefve.jpg")),
     "file b'b/na\\xefve.jpg' in"),
    # Kaggle's CSV-labelled layout (train.csv + images/, or the images beside it): where labels come from
    (lambda root: (make_dataset(root, {"images": 3}), (root / "train.csv").write_text("img_000.jpg,cat\n")),
     "single class ('images'); a classifier needs at least 2 class folders; train.csv looks like a list of labels: "
     "edgeclf reads each image's label from the name of its folder, so put (or link) each image in"),
    (lambda root: (make_dataset(root, {"x": 1}), os.rename(root / "x" / "img_000.jpg", root / "img_000.jpg"),
                   (root / "x").rmdir(), (root / "labels.csv").write_text("img_000.jpg,cat\n")),
     "data/<class name>/ (one folder per class); labels.csv looks like a list of labels"),
    # classes that happen to be called like splits: the layout is pre-split, and the message says how to read it
    (lambda root: make_dataset(root, {"train": 3, "test": 3}),
     "looks pre-split (test/, train/) but those folders hold no class folders; put images in"),
])
def test_dataset_errors_are_one_line(tmp_path: Path, setup, message: str) -> None:
    root = tmp_path / "data"
    setup(root)
    with pytest.raises(DatasetError) as exc:
        scan(root)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_a_class_folder_given_as_data_points_at_its_parent(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "data", {"pikachu": 3, "no-pikachu": 3})
    with pytest.raises(DatasetError, match=r"data/pikachu holds 3 images itself, like one class folder: to train "
                                           r"on its classes, pass the folder above it \(.*data\)$"):
        scan(data / "pikachu")
    # A folder of photos among unrelated folders (downloads, docs, one more with a picture): no advice.
    home = make_dataset(tmp_path / "home", {"photos": 3, "screenshots": 1})
    (home / "docs").mkdir()
    (home / "downloads").mkdir()
    (home / "repos").mkdir()
    with pytest.raises(DatasetError) as exc:
        scan(home / "photos")
    assert "no class sub-folders" in str(exc.value) and "folder above it" not in str(exc.value)


def test_class_with_one_image_lands_in_train(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "data", {"many": 30, "lonely": 1})
    ds = scan(data)
    lonely = [s for s in ds.samples if ds.classes[s.label] == "lonely"]
    assert [s.split for s in lonely] == ["train"]


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P_transparent", "L", "CMYK", "I;16", "RGB_exif_rotated"])
def test_modes_decode_to_rgb(tmp_path: Path, mode: str) -> None:
    base = photo(5, (40, 20))
    path = tmp_path / "x.png"
    if mode == "RGBA":
        im = base.convert("RGBA")
        im.putalpha(0)  # fully transparent: must come out as the fixed white background
        im.save(path)
        assert np.asarray(load_rgb(path)).min() == 255
        return
    if mode == "LA":
        base.convert("LA").save(path)
    elif mode == "P_transparent":
        im = base.convert("P")
        im.info["transparency"] = 0
        im.save(path, transparency=0)
    elif mode == "L":
        base.convert("L").save(path)
    elif mode == "CMYK":
        path = tmp_path / "x.jpg"
        base.convert("CMYK").save(path)
    elif mode == "I;16":
        arr = np.full((20, 40), 65535, np.uint16)
        Image.fromarray(arr).save(path)
        out = load_rgb(path)
        assert out.mode == "RGB" and np.asarray(out).min() == 255  # scaled, not clipped
        return
    elif mode == "RGB_exif_rotated":
        path = tmp_path / "x.jpg"
        exif = Image.Exif()
        exif[0x0112] = 6  # rotate 90°: a 40x20 file is shown 20x40
        base.save(path, exif=exif)
        assert load_rgb(path).size == (20, 40)
        return
    out = load_rgb(path)
    assert out.mode == "RGB" and out.size == (40, 20)


def test_gif_first_frame_and_other_formats(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    assert np.asarray(load_rgb(tmp_path / "a.gif"))[8, 8].tolist() == [255, 0, 0]
    for fmt, ext in (("WEBP", "webp"), ("BMP", "bmp"), ("TIFF", "tif"), ("JPEG", "jfif"), ("AVIF", "avif")):
        photo(2).save(tmp_path / f"x.{ext}", format=fmt)
        assert load_rgb(tmp_path / f"x.{ext}").size == (64, 48)


def test_photos_edgeclf_cannot_read_are_reported_not_silently_dropped(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture) -> None:
    """.jfif (a browser's JPEG), .avif and iPhone .heic are read; camera raw files are named in a warning."""
    data = make_dataset(tmp_path / "data", {"a": 6, "b": 6})
    photo(3).save(data / "a" / "saved.jfif", format="JPEG")
    photo(4).save(data / "b" / "IMG_0001.HEIC", quality=90)  # an iPhone's camera default: it was left out
    (data / "b" / "IMG_0002.CR2").write_bytes(b"II*\x00\x10\x00\x00\x00CR\x02\x00")
    r = diagnose(data, workers=1)
    assert r["n_images"] == 14 and not r["unreadable"]
    assert r["ignored"]["unreadable_photos"] == [str(data / "b" / "IMG_0002.CR2")]
    assert any(w.startswith("1 photo(s) in formats edgeclf cannot read were left out (1 .cr2") for w in r["warnings"])


def test_heic_is_decoded_upright_as_a_jpeg_is(tmp_path: Path) -> None:
    """An iPhone photo stores the camera's rotation: the .heic and the .jpg of one shot give the same pixels' shape."""
    a = np.zeros((120, 160, 3), np.uint8)
    a[:, :40] = 255  # a white band on the left; rotated upright (EXIF 6) it is on top
    exif = Image.Exif()
    exif[0x0112] = 6
    for ext in ("heic", "jpg"):
        Image.fromarray(a).save(tmp_path / f"shot.{ext}", exif=exif.tobytes(), quality=95)
        img = np.asarray(load_rgb(tmp_path / f"shot.{ext}"))
        assert img.shape == (160, 120, 3) and img[:30].mean() > 200 and img[-30:].mean() < 60, ext


def test_draft_decoding_keeps_shorter_side(tmp_path: Path) -> None:
    photo(4, (1600, 1200)).save(tmp_path / "big.jpg", quality=90)
    img = load_rgb(tmp_path / "big.jpg", min_side=256)
    assert min(img.size) >= 256 and img.size[0] < 1600  # reduced by the decoder, not below the target


def test_class_names_with_commas_quotes_and_spaces_survive_csv_and_labels(tmp_path: Path) -> None:
    """predict --csv quotes fields (a comma in a class name made extra columns); labels.txt keeps edge spaces."""
    import csv
    import io

    from edgeclf.exporting.exporter import write_labels
    from edgeclf.runtime.predict import format_predictions

    names = ["Pikachu, Ash's", 'say "cheese"', " lead space"]
    rows = [{"path": "a, b/1.jpg", "top": [{"label": n, "score": 0.5} for n in names]}]
    parsed = list(csv.reader(io.StringIO(format_predictions(rows, "csv"))))
    assert parsed[0] == ["path", "rank", "label", "score", "unknown", "error"]
    assert [r[2] for r in parsed[1:]] == names and all(r[0] == "a, b/1.jpg" for r in parsed[1:])
    assert write_labels(tmp_path / "m.tflite", names).read_text(encoding="utf-8").split("\n")[:-1] == names


def test_doctor_warns_about_pixels_clients_decode_differently(tmp_path: Path) -> None:
    """Clients disagree on what lies under a transparent pixel (white here, the stored colour in MediaPipe, black
    on Android) and on 16-bit greyscale: doctor says which files; an opaque alpha channel is not flagged."""
    data = make_dataset(tmp_path / "data", {"a": 6, "b": 6})
    rgba = np.zeros((40, 50, 4), np.uint8)
    rgba[..., :3] = (200, 100, 50)
    rgba[:20, :, 3] = 255  # the lower half is fully transparent
    Image.fromarray(rgba, "RGBA").save(data / "a" / "cut_out.png")
    rgba[..., 3] = 255
    Image.fromarray(rgba, "RGBA").save(data / "b" / "opaque.png")
    Image.fromarray(np.arange(0, 64_000, 32, dtype=np.uint16).reshape(40, 50)).save(data / "b" / "deep.png")
    r = diagnose(data, workers=1)
    assert r["transparent"] == [str(data / "a" / "cut_out.png")]
    assert any("1 image(s) have transparent pixels" in w and "cut_out.png" in w for w in r["warnings"])
    assert r["high_bit_depth"] == [str(data / "b" / "deep.png")]  # Pillow's convert("RGB") makes it white
    assert any("1 image(s) are 16-bit" in w and "deep.png" in w for w in r["warnings"])


def test_a_terminal_that_cannot_print_a_class_name_gets_a_stand_in(tmp_path: Path) -> None:
    """Windows writes redirected output in cp1252: a class named 猫 crashed doctor with UnicodeEncodeError."""
    import subprocess
    import sys

    data = make_dataset(tmp_path / "data", {"猫": 3, "dog": 3})
    env = dict(os.environ, PYTHONIOENCODING="cp1252")
    out = subprocess.run([sys.executable, "-m", "edgeclf", "doctor", str(data), "--no-embeddings"], env=env,
                         capture_output=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr.decode("cp1252", "replace")[-400:]
    assert "?      " in out.stdout.decode("cp1252") and "dog" in out.stdout.decode("cp1252")


def test_images_without_an_image_extension_are_named_not_dropped_silently(tmp_path: Path) -> None:
    """Scraped photos saved as `000123` or `pic.jpg?w=400` were left out with no word (train) or only counted."""
    from edgeclf.data.doctor import format_report

    data = make_dataset(tmp_path / "data", {"a": 4, "b": 4})
    (data / "a" / "img_000.jpg").rename(data / "a" / "000123")
    (data / "b" / "img_000.jpg").rename(data / "b" / "pic.jpg?w=400")
    (data / "b" / "README").write_text("BM is how this text starts, but it is no bitmap\n")
    photo(5).save(data / "b" / "IMG_0003", format="HEIF")  # an iPhone photo that lost its name
    (data / "b" / "notes.txt").write_text("not an image")
    r = diagnose(data, workers=1)
    assert "3 file(s) hold image data but have no image extension, so they were left out (first: " in format_report(r)
    (tmp_path / "c").mkdir()
    for p in sorted((data / "a").glob("img_*.jpg")):  # a class of extension-less photos only
        p.rename(tmp_path / "c" / p.stem)
    (data / "a" / "000123").rename(tmp_path / "c" / "000123")
    (data / "a").rmdir()
    (tmp_path / "c").rename(data / "a")
    with pytest.raises(DatasetError, match=r"class folder .*data/a has no images .*; 4 file\(s\) hold image data but "
                                           r"have no image extension.*rename them to .jpg/.png"):
        scan(data)


def test_decoding_in_threads_leaves_the_warning_filters_as_they_were(tmp_path: Path) -> None:
    """Decoding in worker threads (macOS, or once JAX is loaded) left 'ignore every warning' installed for good:
    catch_warnings in two threads at once put back each other's filter lists. A marked int8 file then went
    unwarned in verify, and a notebook heard no warning again."""
    import warnings
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(0)
    paths = []
    for i in range(64):
        paths.append(tmp_path / f"{i}.jpg")
        Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(paths[-1])
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("default")
        before = list(warnings.filters)
        for _ in range(3):
            with ThreadPoolExecutor(4) as ex:
                assert all(img.size == (400, 300) for img in ex.map(load_rgb, paths))
        assert warnings.filters == before
        warnings.warn("still heard", UserWarning)
    assert [str(w.message) for w in seen if w.category is UserWarning] == ["still heard"]


def test_importing_edgeclf_leaves_pillow_a_bomb_guard(tmp_path: Path) -> None:
    """edgeclf set Image.MAX_IMAGE_PIXELS = None on import: the caller's own Pillow code lost its guard too."""
    import edgeclf.data.images  # noqa: F401 - the import is what is checked

    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header_only(30000, 30000))
    with pytest.raises(Image.DecompressionBombError):
        Image.open(bomb)
    over = tmp_path / "just_over.png"
    over.write_bytes(png_header_only(16001, 16000))
    with pytest.raises(ImageDecodeError, match="image too large: 256,016,000 pixels exceed the 256,000,000-pixel "
                                               "limit"):
        load_rgb(over)


def test_a_file_that_fails_to_decode_does_not_keep_its_handle(tmp_path: Path) -> None:
    """A truncated file's handle stayed open until the garbage collector ran: one descriptor per such file."""
    import gc
    import warnings

    Image.fromarray(np.zeros((50, 60, 3), np.uint8)).save(tmp_path / "whole.bmp")
    (tmp_path / "cut.bmp").write_bytes((tmp_path / "whole.bmp").read_bytes()[:200])
    frames = [Image.fromarray(np.full((20, 20, 3), i * 40, np.uint8)) for i in range(3)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", ResourceWarning)
        with pytest.raises(ImageDecodeError, match="truncated image data"):
            load_rgb(tmp_path / "cut.bmp")
        assert load_rgb(tmp_path / "anim.gif").size == (20, 20)
        gc.collect()
    assert [str(w.message) for w in seen if w.category is ResourceWarning] == []
