"""prepare(): real BreastMNIST, generated ImageFolder / CSV sources, and every validation error by name."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from components.data.dataset import load_prepared, load_split, read_manifest
from components.data.prepare import VALIDATION_REPORT, prepare
from medpipe.config import DataConfig
from medpipe.errors import DataError
from tests.helpers.project import corrupt_png, png_bytes, truncated_png


def cfg(**kw) -> DataConfig:
    return DataConfig(**{"min_images_per_class": 3, **kw})


# --- MedMNIST ----------------------------------------------------------------------------------
def test_breastmnist_keeps_the_official_split(breastmnist_npz: Path, tmp_path: Path) -> None:
    out = prepare(breastmnist_npz, tmp_path / "prepared", DataConfig())
    assert out.class_names == ("malignant", "normal_or_benign")
    totals = {s: sum(c.values()) for s, c in out.counts.items()}
    assert totals == {"train": 546, "val": 78, "test": 156}
    with np.load(breastmnist_npz) as npz:
        raw_train, raw_labels = npz["train_images"], npz["train_labels"].ravel()
    train = load_split(out.path, "train")
    assert train.images.shape == (546, 28, 28, 1) and train.images.dtype == np.uint8
    np.testing.assert_array_equal(train.images[..., 0], raw_train)
    np.testing.assert_array_equal(train.labels, raw_labels)
    assert out.counts["train"] == {
        "malignant": int((raw_labels == 0).sum()),
        "normal_or_benign": int((raw_labels == 1).sum()),
    }
    m = read_manifest(out.path)
    assert m["split"] == {"strategy": "source"}
    assert len(m["sha256"]["test"]) == 156 and len(set(m["sha256"]["train"])) >= 540
    # BreastMNIST really has an image in both train and test: it must be reported, by sha256.
    shared = set(m["sha256"]["train"]) & set(m["sha256"]["test"])
    assert m["duplicates"]["count"] == len(shared) >= 1
    assert {d["sha256"] for d in m["duplicates"]["items"]} == shared
    assert load_prepared(out.path).num_classes == 2


def test_output_is_deterministic_and_converted(breastmnist_npz: Path, tmp_path: Path) -> None:
    from components.data.versioning import dir_md5

    a = prepare(breastmnist_npz, tmp_path / "a", cfg(image_size=32, channels=3))
    b = prepare(breastmnist_npz, tmp_path / "b", cfg(image_size=32, channels=3))
    assert dir_md5(a.path) == dir_md5(b.path)
    images = load_split(a.path, "val").images
    assert images.shape == (78, 32, 32, 3)
    np.testing.assert_array_equal(images[..., 0], images[..., 2])  # grey replicated to RGB
    assert read_manifest(a.path)["resized"] == 780


def test_npz_label_outside_class_list_names_the_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "mine.npz"
    np.savez(path, images=rng.integers(0, 256, (30, 8, 8), dtype=np.uint8), labels=np.r_[[0] * 14, [1] * 14, 7, 7])
    with pytest.raises(DataError, match=r"mine\.npz \[labels\[28\]\]: label 7 is outside the class list"):
        prepare(path, tmp_path / "out", cfg(image_size=8, class_names=["a", "b"]))
    out = prepare(path, tmp_path / "out", cfg(image_size=8, class_names=["a", "b"], on_invalid="skip-and-report"))
    assert sum(sum(c.values()) for c in out.counts.values()) == 28
    assert read_manifest(out.path)["split"]["strategy"] == "stratified"


def test_corrupt_npz_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.npz"
    bad.write_bytes(b"PK\x03\x04 definitely not a zip")
    with pytest.raises(DataError, match=r"broken\.npz: not a readable \.npz"):
        prepare(bad, tmp_path / "out", cfg())
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.npz: zero-byte file"):
        prepare(empty, tmp_path / "out", cfg())


# --- ImageFolder ---------------------------------------------------------------------------------
def test_imagefolder_stratified_seeded_split(make_folder, tmp_path: Path) -> None:
    root = make_folder({"benign": 20, "malignant": 10})
    (root / "README.md").write_text("root-level files are not data")
    (root / "benign" / ".DS_Store").write_bytes(b"\0")
    nested = root / "malignant" / "scanner2"
    nested.mkdir()
    for i in range(4):
        (nested / f"n{i}.jpg").write_bytes(png_bytes(900 + i))  # extension lies; content decodes fine
    out = prepare(root, tmp_path / "p1", cfg(image_size=16, split={"val": 0.2, "test": 0.2, "seed": 7}))
    assert out.class_names == ("benign", "malignant")
    assert out.counts == {
        "train": {"benign": 12, "malignant": 8},
        "val": {"benign": 4, "malignant": 3},
        "test": {"benign": 4, "malignant": 3},
    }
    m = read_manifest(out.path)
    assert "malignant/scanner2/n0.jpg" in sum(m["files"].values(), [])
    again = prepare(root, tmp_path / "p2", cfg(image_size=16, split={"val": 0.2, "test": 0.2, "seed": 7}))
    other = prepare(root, tmp_path / "p3", cfg(image_size=16, split={"val": 0.2, "test": 0.2, "seed": 8}))
    assert read_manifest(again.path)["files"] == m["files"]
    assert read_manifest(other.path)["files"] != m["files"]


def test_imagefolder_with_its_own_split_folders(make_folder, tmp_path: Path) -> None:
    root = tmp_path / "split_tree"
    make_folder({"a": 6, "b": 6}, name="split_tree/train")
    make_folder({"a": 2, "b": 2}, name="split_tree/test", seed=1)
    out = prepare(root, tmp_path / "out", cfg(image_size=16))
    m = read_manifest(out.path)
    assert m["split"]["strategy"] == "source" and m["split"]["carved_from_train"] == ["val"]
    assert out.counts["test"] == {"a": 2, "b": 2}
    assert all(f.startswith("test/") for f in m["files"]["test"])


def test_invalid_files_fail_naming_every_file(make_folder, tmp_path: Path) -> None:
    root = make_folder({"benign": 6, "malignant": 6})
    (root / "benign" / "corrupt.png").write_bytes(corrupt_png(1))
    (root / "benign" / "truncated.png").write_bytes(truncated_png(2))
    (root / "malignant" / "empty.png").write_bytes(b"")
    (root / "malignant" / "notes.txt").write_text("not an image")
    (root / "malignant" / "fake.png").write_text("plain text pretending to be a png")
    previous = prepare(make_folder({"x": 5, "y": 5}, name="ok"), tmp_path / "prepared", cfg(image_size=16))
    before = {p.relative_to(previous.path): p.read_bytes() for p in previous.path.rglob("*") if p.is_file()}

    with pytest.raises(DataError) as err:
        prepare(root, tmp_path / "prepared", cfg(image_size=16))
    msg = str(err.value)
    assert "5 invalid file(s)" in msg and "data.on_invalid=skip-and-report" in msg
    for name, reason in [
        ("benign/corrupt.png", "corrupt or unreadable image"),
        ("benign/truncated.png", "truncated image"),
        ("malignant/empty.png", "zero-byte file"),
        ("malignant/notes.txt", "not an image file (extension '.txt'"),
        ("malignant/fake.png", "not an image file (content"),
    ]:
        assert f"{root / name}: {reason}" in msg
    # nothing half-written: the previous prepared data is intact, no temp folders left behind
    assert {p.relative_to(previous.path): p.read_bytes() for p in previous.path.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_skip_and_report_lists_every_skipped_file(make_folder, tmp_path: Path) -> None:
    root = make_folder({"benign": 6, "malignant": 6})
    (root / "benign" / "truncated.png").write_bytes(truncated_png(3))
    (root / "malignant" / "empty.png").write_bytes(b"")
    out = prepare(root, tmp_path / "out", cfg(image_size=16, on_invalid="skip-and-report"))
    assert sum(sum(c.values()) for c in out.counts.values()) == 12
    report = json.loads((out.path / VALIDATION_REPORT).read_text())
    skipped = {Path(s["file"]).name: s["reason"] for s in report["skipped"]}
    assert set(skipped) == {"truncated.png", "empty.png"}
    assert skipped["empty.png"] == "zero-byte file" and skipped["truncated.png"].startswith("truncated image")
    assert read_manifest(out.path)["skipped"] == report["skipped"]


def test_fewer_than_two_classes_names_the_source(make_folder, tmp_path: Path) -> None:
    root = make_folder({"only": 10}, name="single")
    with pytest.raises(DataError, match=rf"{root}: 1 class\(es\) found \['only'\]; a classifier needs at least 2"):
        prepare(root, tmp_path / "out", cfg())


def test_class_with_too_few_images_names_its_folder(make_folder, tmp_path: Path) -> None:
    root = make_folder({"common": 10, "rare": 2})
    with pytest.raises(DataError) as err:
        prepare(root, tmp_path / "out", cfg(min_images_per_class=3))
    assert f"class 'rare': 2 image(s) ({root / 'rare'})" in str(err.value)
    assert "data.min_images_per_class=3" in str(err.value)


def test_folder_not_in_class_names_names_the_file(make_folder, tmp_path: Path) -> None:
    root = make_folder({"benign": 5, "malignant": 5, "unknown": 1})
    with pytest.raises(DataError) as err:
        prepare(root, tmp_path / "out", cfg(class_names=["malignant", "benign"]))
    assert f"{root / 'unknown' / 'img_000.png'}: label 'unknown'" in str(err.value)
    assert "is not in data.class_names ['malignant', 'benign']" in str(err.value)
    out = prepare(root, tmp_path / "out", cfg(class_names=["malignant", "benign"], on_invalid="skip-and-report"))
    assert out.class_names == ("malignant", "benign")  # the configured order wins


def test_mixed_sizes_resize_or_reject(make_folder, tmp_path: Path) -> None:
    root = make_folder({"a": 5, "b": 5}, size=(20, 20))
    (root / "b" / "big.png").write_bytes(png_bytes(77, size=(40, 30)))
    out = prepare(root, tmp_path / "resized", cfg(image_size=20))
    m = read_manifest(out.path)
    assert m["source_sizes"] == {"20x20": 10, "40x30": 1} and m["resized"] == 1
    assert load_split(out.path, "train").images.shape[1:] == (20, 20, 1)
    with pytest.raises(DataError, match=rf"{root / 'b' / 'big.png'}: size 40x30 differs from the common size 20x20"):
        prepare(root, tmp_path / "rejected", cfg(image_size=20, mixed_sizes="reject"))


# --- CSV ---------------------------------------------------------------------------------------
def test_csv_group_split_never_leaks_a_patient(make_csv, tmp_path: Path) -> None:
    csv_path = make_csv(patients=21, per_patient=3)
    out = prepare(csv_path, tmp_path / "out", cfg(image_size=16, split={"val": 0.2, "test": 0.2, "seed": 3}))
    m = read_manifest(out.path)
    assert m["split"]["strategy"] == "stratified-group"
    groups = {s: set(g) for s, g in m["groups"].items()}
    assert groups["train"] and groups["val"] and groups["test"]
    assert not (groups["train"] & groups["val"] or groups["train"] & groups["test"] or groups["val"] & groups["test"])
    assert sum(len(g) for g in groups.values()) == 21
    for split in ("val", "test"):  # stratified: both classes in every split
        assert all(n > 0 for n in out.counts[split].values())
    assert m["files"]["train"][0].startswith("scans/")


def test_csv_errors_name_the_file_and_line(make_csv, tmp_path: Path) -> None:
    csv_path = make_csv(patients=6, per_patient=2, with_group=False)
    with open(csv_path, "a") as f:
        f.write("scans/missing.png,benign\nscans/p00_0.png,cyst\n")
    with pytest.raises(DataError) as err:
        prepare(csv_path, tmp_path / "out", cfg(image_size=16, class_names=["benign", "malignant"]))
    msg = str(err.value)
    assert f"{csv_path.parent / 'scans' / 'missing.png'} (labels.csv line 14): file not found" in msg
    assert "(labels.csv line 15): label 'cyst'" in msg and "not in data.class_names" in msg

    bad_header = tmp_path / "bad.csv"
    bad_header.write_text("file,target\na.png,x\n")
    with pytest.raises(DataError, match=r"bad\.csv: the CSV manifest needs a header with 'path' and 'label'"):
        prepare(bad_header, tmp_path / "out", cfg())


def test_stage_command_reads_params(breastmnist_npz: Path, tmp_path: Path) -> None:
    """`medpipe stage prepare` (what dvc.yaml runs): reads params.yaml, errors as one line naming the input."""
    import subprocess
    import sys

    params = tmp_path / "params.yaml"
    params.write_text("data:\n  image_size: 16\n  channels: 1\n")

    def stage(raw: Path, out: Path) -> subprocess.CompletedProcess[str]:
        argv = ["stage", "prepare", "--params", str(params), "--raw", str(raw), "--out", str(out)]
        return subprocess.run([sys.executable, "-m", "medpipe", *argv], capture_output=True, text=True, timeout=300)

    assert stage(breastmnist_npz, tmp_path / "out").returncode == 0
    assert load_prepared(tmp_path / "out").image_size == 16
    missing = tmp_path / "nope"
    failed = stage(missing, tmp_path / "o2")
    message = " ".join(failed.stderr.split())  # rich wraps long lines at the terminal width
    assert failed.returncode == 2 and f"{missing}: data source not found" in message
    assert "Traceback" not in message


def test_a_label_typo_on_a_few_rows_is_an_error_not_a_new_class(make_csv, tmp_path: Path) -> None:
    csv_path = make_csv(patients=20, per_patient=2, with_group=False)
    out = tmp_path / "prepared"
    first = prepare(csv_path, out, cfg())
    assert first.class_names == ("benign", "malignant")
    lines, typo, changed = csv_path.read_text().splitlines(), [], 0
    for line in lines[1:]:
        if ",benign" in line and changed < 5:
            line, changed = line.replace(",benign", ",benigh"), changed + 1
        typo.append(line)
    typo = [lines[0], *typo]
    csv_path.write_text("\n".join(typo) + "\n")
    with pytest.raises(DataError, match=r"class 'benigh' is new since the previous data version .* a typo") as err:
        prepare(csv_path, out, cfg())
    assert "labels.csv" in str(err.value) and "data.class_names" in str(err.value)
    assert read_manifest(out)["class_names"] == ["benign", "malignant"]  # the previous version is untouched
    # a real new class is declared: then it is accepted like any other
    accepted = prepare(csv_path, out, cfg(class_names=["benign", "benigh", "malignant"], min_images_per_class=1))
    assert accepted.class_names == ("benign", "benigh", "malignant")


def test_a_class_missing_from_a_split_is_an_error(make_csv, tmp_path: Path) -> None:
    csv_path = make_csv(patients=12, per_patient=2, with_group=False)
    lines = csv_path.read_text().splitlines()
    splits = ("val", "test", "train")
    rows = [f"{line},{'train' if 'malignant' in line else splits[i % 3]}" for i, line in enumerate(lines[1:])]
    csv_path.write_text("\n".join([lines[0] + ",split", *rows]) + "\n")
    with pytest.raises(DataError, match=r"class 'malignant' has no images in val/test"):
        prepare(csv_path, tmp_path / "prepared", cfg())
