"""MedMNIST v3 metadata (2D single-label sets) and a checked fetch: local folders first, then zenodo.

Names, md5 sums and label order are those of the official ``medmnist`` package's ``INFO`` table
(MedMNIST v3, zenodo record 10519652); the package itself is not a dependency (it pulls in
scikit-image and friends for one dictionary). Class names are the official labels made
identifier-safe (``"normal, benign"`` -> ``"normal_or_benign"``). A size suffix picks the larger
versions: ``breastmnist_64``, ``breastmnist_128``, ``breastmnist_224``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from medpipe.errors import DataError

ZENODO = "https://zenodo.org/records/10519652/files"
SIZES = (28, 64, 128, 224)
_ORGANS = (
    "bladder",
    "femur_left",
    "femur_right",
    "heart",
    "kidney_left",
    "kidney_right",
    "liver",
    "lung_left",
    "lung_right",
    "pancreas",
    "spleen",
)

# name -> (class names in label order, md5 per size 28/64/128/224)
_TABLE: dict[str, tuple[tuple[str, ...], tuple[str, str, str, str]]] = {
    "breastmnist": (
        ("malignant", "normal_or_benign"),
        (
            "750601b1f35ba3300ea97c75c52ff8f6",
            "742edef2a1fd1524b2efff4bd7ba9364",
            "363e4b3f8d712e9b5de15470a2aaadf1",
            "b56378a6eefa9fed602bb16d192d4c8b",
        ),
    ),
    "pneumoniamnist": (
        ("normal", "pneumonia"),
        (
            "28209eda62fecd6e6a2d98b1501bb15f",
            "8f4eceb4ccffa70c672198ea285246c6",
            "05b46931834c231683c68f40c47b2971",
            "d6a3c71de1b945ea11211b03746c1fe1",
        ),
    ),
    "pathmnist": (
        (
            "adipose",
            "background",
            "debris",
            "lymphocytes",
            "mucus",
            "smooth_muscle",
            "normal_colon_mucosa",
            "cancer_associated_stroma",
            "colorectal_adenocarcinoma_epithelium",
        ),
        (
            "a8b06965200029087d5bd730944a56c1",
            "55aa9c1e0525abe5a6b9d8343a507616",
            "ac42d08fb904d92c244187169d1fd1d9",
            "2c51a510bcdc9cf8ddb2af93af1eadec",
        ),
    ),
    "dermamnist": (
        (
            "actinic_keratoses_and_intraepithelial_carcinoma",
            "basal_cell_carcinoma",
            "benign_keratosis_like_lesions",
            "dermatofibroma",
            "melanoma",
            "melanocytic_nevi",
            "vascular_lesions",
        ),
        (
            "0744692d530f8e62ec473284d019b0c7",
            "b70a2f5635c6199aeaa28c31d7202e1f",
            "2defd784463fa5243564e855ed717de1",
            "8974907d8e169bef5f5b96bc506ae45d",
        ),
    ),
    "octmnist": (
        ("choroidal_neovascularization", "diabetic_macular_edema", "drusen", "normal"),
        (
            "c68d92d5b585d8d81f7112f81e2d0842",
            "e229e9440236b774d9f0dfef9d07bdaf",
            "0a97e76651ace45c5d943ee3f65b63ae",
            "abc493b6d529d5de7569faaef2773ba3",
        ),
    ),
    "retinamnist": (
        ("grade_0", "grade_1", "grade_2", "grade_3", "grade_4"),
        (
            "bd4c0672f1bba3e3a89f0e4e876791e4",
            "afda852cc34dcda56f86ad2b2457dbcc",
            "e48e916a24454daf90583d4e6efb1a18",
            "eae7e3b6f3fcbda4ae613ebdcbe35348",
        ),
    ),
    "bloodmnist": (
        (
            "basophil",
            "eosinophil",
            "erythroblast",
            "immature_granulocytes",
            "lymphocyte",
            "monocyte",
            "neutrophil",
            "platelet",
        ),
        (
            "7053d0359d879ad8a5505303e11de1dc",
            "2b94928a2ae4916078ca51e05b6b800b",
            "adace1e0ed228fccda1f39692059dd4c",
            "b718ff6835fcbdb22ba9eacccd7b2601",
        ),
    ),
    "tissuemnist": (
        (
            "collecting_duct_connecting_tubule",
            "distal_convoluted_tubule",
            "glomerular_endothelial_cells",
            "interstitial_endothelial_cells",
            "leukocytes",
            "podocytes",
            "proximal_tubule_segments",
            "thick_ascending_limb",
        ),
        (
            "ebe78ee8b05294063de985d821c1c34b",
            "123ece2eba09d0aa5d698fda57103344",
            "61b955355d7425a89687b06cca3ce0c2",
            "b077128c4a949f0a4eb01517f9037b9c",
        ),
    ),
    "organamnist": (
        _ORGANS,
        (
            "68e3f8846a6bd62f0c9bf841c0d9eacc",
            "2dcccc29b88e6da5a01161ef20cda288",
            "eeae80d0a227a8d099027e1b3cfd3b60",
            "50747347e05c87dd3aaf92c49f9f3170",
        ),
    ),
    "organcmnist": (
        _ORGANS,
        (
            "b9ceb9546e10131b32923c5bbeaea2b1",
            "3ce34a8724ea6f548e6db4744d03b6a9",
            "773c1f009daa3fe5d9a2a201b2a7ed94",
            "050f5e875dc056f6768abf94ec9995d1",
        ),
    ),
    "organsmnist": (
        _ORGANS,
        (
            "9ab87b696fb54e2a387ebe992d6ed5f1",
            "53a6d115339d874c25e309a994ff46d3",
            "ded0c5fa01a95dc4978b956f613e9b8e",
            "b354719e553fbbb2513d5533f52a4cb1",
        ),
    ),
}


@dataclass(frozen=True)
class MedMNISTInfo:
    """One downloadable MedMNIST file."""

    name: str  # e.g. "breastmnist" or "breastmnist_64"
    dataset: str  # e.g. "breastmnist"
    size: int
    class_names: tuple[str, ...]
    md5: str

    @property
    def filename(self) -> str:
        return f"{self.name}.npz"

    @property
    def url(self) -> str:
        return self.url_at(ZENODO)

    def url_at(self, base_url: str) -> str:
        return f"{base_url.rstrip('/')}/{self.filename}?download=1"


def names() -> list[str]:
    """Every known dataset name (28 px; append ``_64``/``_128``/``_224`` for larger)."""
    return sorted(_TABLE)


def lookup(name: str) -> MedMNISTInfo | None:
    """Metadata for a MedMNIST name such as ``breastmnist`` or ``breastmnist_128``; None if unknown."""
    key = name.strip().lower()
    key = key.removesuffix(".npz")
    dataset, _, suffix = key.partition("_")
    if dataset not in _TABLE:
        return None
    size = 28
    if suffix:
        if not suffix.isdigit() or int(suffix) not in SIZES:
            return None
        size = int(suffix)
    class_names, md5s = _TABLE[dataset]
    canonical = dataset if size == 28 else f"{dataset}_{size}"
    return MedMNISTInfo(canonical, dataset, size, class_names, md5s[SIZES.index(size)])


def md5sum(path: Path) -> str:
    import pooch

    return pooch.file_hash(str(path), alg="md5")


def _check_md5(path: Path, info: MedMNISTInfo) -> None:
    actual = md5sum(path)
    if actual != info.md5:
        raise DataError(
            f"{path}: md5 {actual} does not match the official MedMNIST md5 {info.md5} for {info.filename}; "
            "the file is corrupt or a different version: delete it (it will be downloaded again) or replace it"
        )


def fetch(
    info: MedMNISTInfo,
    search_dirs: Iterable[Path | None],
    cache_dir: Path,
    *,
    allow_download: bool = True,
    timeout_s: float = 60.0,
    base_url: str = ZENODO,
) -> Path:
    """Return a local, md5-checked copy of ``info``: the first of ``search_dirs`` that has it, else download.

    Downloads go to ``cache_dir`` through pooch, which keeps a file only after its md5 matches, so an
    interrupted or corrupt download never leaves a bad file behind.
    """
    looked: list[str] = []
    for folder in [*search_dirs, cache_dir]:
        if folder is None:
            continue
        candidate = Path(folder).expanduser() / info.filename
        looked.append(str(candidate))
        if candidate.is_file():
            _check_md5(candidate, info)
            return candidate
    if not allow_download:
        raise DataError(
            f"MedMNIST file {info.filename} not found (looked in: {', '.join(looked)}) and downloads are off; "
            f"put the file in $MEDPIPE_DATA_DIR or download it from {info.url}"
        )
    import pooch
    import requests

    url = info.url_at(base_url)
    try:  # pooch downloads into a temporary file and keeps it only when the md5 matches
        path = pooch.retrieve(
            url,
            known_hash=f"md5:{info.md5}",
            fname=info.filename,
            path=cache_dir,
            downloader=pooch.HTTPDownloader(progressbar=False, timeout=timeout_s),
        )
    except ValueError as err:  # pooch's hash check
        actual = re.search(r"but got (\w+)", str(err))
        raise DataError(
            f"downloaded {url}: md5 {actual.group(1) if actual else '?'} does not match the official MedMNIST md5 "
            f"{info.md5} for {info.filename}; nothing was saved. Retry, or put a verified copy in $MEDPIPE_DATA_DIR"
        ) from None
    except (OSError, requests.RequestException) as err:
        raise DataError(
            f"could not download {url} ({err}); {info.filename} was not found in: {', '.join(looked)}. "
            "Check the network, or put the file in $MEDPIPE_DATA_DIR"
        ) from None
    return Path(path)
