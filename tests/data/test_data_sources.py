"""Resolving data.source (MedMNIST names with md5, paths) and the canonical raw layout."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from components.data import medmnist
from components.data.dataset import read_manifest
from components.data.prepare import prepare
from components.data.sources import read_raw, resolve_source, stage_raw
from medpipe.config import DataConfig
from medpipe.errors import DataError
from medpipe.settings import Settings


def test_medmnist_table() -> None:
    info = medmnist.lookup("BreastMNIST")
    assert info is not None and info.md5 == "750601b1f35ba3300ea97c75c52ff8f6"
    assert info.class_names == ("malignant", "normal_or_benign")
    assert info.url == "https://zenodo.org/records/10519652/files/breastmnist.npz?download=1"
    big = medmnist.lookup("breastmnist_128")
    assert big is not None and big.filename == "breastmnist_128.npz" and big.md5 != info.md5
    assert medmnist.lookup("breastmnist_99") is None and medmnist.lookup("chestmnist") is None


def test_name_resolves_in_data_dir_with_md5(breastmnist_npz: Path, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", data_dir=breastmnist_npz.parent, project_dir=tmp_path)
    src = resolve_source("breastmnist", settings, allow_download=False)
    assert (src.kind, src.path, src.name) == ("npz", breastmnist_npz, "breastmnist")
    assert src.class_names == ("malignant", "normal_or_benign")


def test_wrong_md5_and_missing_file_are_named(breastmnist_npz: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    settings = Settings(home=tmp_path / "home", data_dir=data_dir, project_dir=tmp_path)
    with pytest.raises(DataError, match=r"breastmnist\.npz not found \(looked in: .*and downloads are off"):
        resolve_source("breastmnist", settings, allow_download=False)
    (data_dir / "breastmnist.npz").write_bytes(breastmnist_npz.read_bytes()[:-10])
    with pytest.raises(DataError, match=rf"{data_dir / 'breastmnist.npz'}: md5 \w+ does not match the official"):
        resolve_source("breastmnist", settings, allow_download=False)
    with pytest.raises(DataError, match=r"'nosuchmnist' is neither an existing path .* nor a known MedMNIST name"):
        resolve_source("nosuchmnist", settings)


def test_paths_resolve_by_kind(breastmnist_npz: Path, make_folder, make_csv, tmp_path: Path) -> None:
    assert resolve_source(str(breastmnist_npz)).kind == "npz"
    assert resolve_source(make_folder({"a": 1})).kind == "imagefolder"
    assert resolve_source(make_csv(patients=3, per_patient=1)).kind == "csv"
    other = tmp_path / "notes.txt"
    other.write_text("x")
    with pytest.raises(DataError, match=rf"{other}: not a supported data source"):
        resolve_source(other)


def test_csv_staging_rewrites_paths_and_prepares_identically(make_csv, tmp_path: Path) -> None:
    csv_path = make_csv(patients=9, per_patient=2)
    outside = tmp_path / "elsewhere" / "extra.png"
    outside.parent.mkdir()
    shutil.copy(csv_path.parent / "scans" / "p00_0.png", outside)
    with open(csv_path, "a") as f:
        f.write(f"{outside},benign,patient-99\n../elsewhere/extra.png,benign,patient-98\n")
    raw = stage_raw(resolve_source(csv_path), tmp_path / "raw")
    assert raw.kind == "csv" and raw.path == tmp_path / "raw" / "manifest.csv"
    rows = list(csv.DictReader(raw.path.open()))
    paths = [r["path"] for r in rows]
    assert paths[0] == "scans/p00_0.png" and all(not p.startswith(("/", "..")) for p in paths)
    assert all((tmp_path / "raw" / p).is_file() for p in paths)
    assert paths[-1].startswith("external/") and paths[-2].startswith("external/")
    assert read_raw(tmp_path / "raw") == raw

    cfg = DataConfig(image_size=16, min_images_per_class=3)
    a = prepare(csv_path, tmp_path / "from_source", cfg)
    b = prepare(tmp_path / "raw", tmp_path / "from_raw", cfg)
    assert a.counts == b.counts
    ma, mb = read_manifest(a.path), read_manifest(b.path)
    assert ma["sha256"] == mb["sha256"] and ma["source"]["fingerprint"] == mb["source"]["fingerprint"]
    for name in ["index.json", *(f"shards/{p.name}" for p in (a.path / "shards").iterdir())]:
        assert (a.path / name).read_bytes() == (b.path / name).read_bytes()


def test_imagefolder_staging_skips_litter(make_folder, tmp_path: Path) -> None:
    root = make_folder({"a": 2, "b": 2})
    (root / "a" / ".hidden.png").write_bytes(b"x")
    raw = stage_raw(resolve_source(root), tmp_path / "raw")
    assert raw.kind == "imagefolder" and raw.name == "imgs"
    files = sorted(p.relative_to(tmp_path / "raw").as_posix() for p in (tmp_path / "raw").rglob("*") if p.is_file())
    assert files == ["images/a/img_000.png", "images/a/img_001.png", "images/b/img_000.png", "images/b/img_001.png",
                     "source.json"]  # fmt: skip


@pytest.fixture
def http_folder(tmp_path: Path):
    """A local HTTP server on 127.0.0.1 serving ``tmp_path / "www"`` (stands in for zenodo)."""
    import functools
    import http.server
    import threading

    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_checks_md5_before_saving(breastmnist_npz: Path, http_folder, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("MEDPIPE_OFFLINE", raising=False)
    www, base = http_folder
    info = medmnist.lookup("breastmnist")
    cache = tmp_path / "cache"
    (www / "breastmnist.npz").write_bytes(breastmnist_npz.read_bytes()[:1000])  # a bad mirror
    with pytest.raises(DataError, match=rf"downloaded {base}/breastmnist\.npz\?download=1: md5 \w+ does not match"):
        medmnist.fetch(info, [], cache, base_url=base)
    assert list(cache.iterdir()) == []  # nothing half-downloaded left behind
    shutil.copy(breastmnist_npz, www / "breastmnist.npz")
    path = medmnist.fetch(info, [], cache, base_url=base)
    assert path == cache / "breastmnist.npz" and medmnist.md5sum(path) == info.md5
    (www / "breastmnist.npz").unlink()
    assert medmnist.fetch(info, [], cache, base_url=base) == path  # now served from the cache
