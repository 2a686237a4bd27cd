#!/usr/bin/env python
"""Rebuild the embedded dataset ``restore_core/data/embedded/`` from its sources, deterministically.

Sources (all open licences; see the generated ATTRIBUTION.md):

* scikit-image sample data: astronaut, chelsea, coffee, rocket, hubble_deep_field;
* scikit-learn sample images: china.jpg, flower.jpg (CC BY 2.0);
* matplotlib sample data: grace_hopper.jpg (public domain);
* Debian package ``lomiri-wallpapers-16.04`` 20.04.0-2: 13 photographs (CC0 / CC BY 4.0 / CC BY-SA 4.0 per
  file, from the package's ``debian/copyright``). Obtained with ``apt-get download`` and unpacked with
  ``dpkg -x``; pass ``--lomiri-deb PATH`` to use an already downloaded package.

Procedure: photos larger than 640 px on the short side are first shrunk (MATLAB-compatible bicubic,
:func:`restore_core.data.imresize.imresize_np`) to a short side of 480 px; then up to ``n`` non-overlapping
192x192 crops with the most texture (mean gradient magnitude on a 32-px grid, greedy) are cut and written as
PNG. The train/test split is by source photo (no photo contributes to both). Splits:

* ``train``: the crops of the training photos;
* ``test``: the first ``n`` crops of each test photo (8 in all; the quick profile's small smoke-run set);
* ``heldout``: every non-overlapping crop the greedy cut finds in the test photos, ``test`` first (the cpu
  profile's evaluation set). No training photo contributes to it.

Asking for more crops never changes the earlier ones (the greedy cut picks them in the same order), so the
``test`` files are the same bytes with or without ``heldout``. The manifest records every file's sha256, its
source, box and split (the smallest split holding it). Running the script twice gives identical files.

Usage: ``python data_scripts/build_embedded.py [--out DIR] [--lomiri-deb PATH]``
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
from PIL import Image

from restore_core.data.imresize import imresize_np

CROP = 192
GRID = 32
SHORT_SIDE = 480
LOMIRI_PACKAGE = "lomiri-wallpapers-16.04"
LOMIRI_VERSION = "20.04.0-2"
LOMIRI_DEB_SHA256 = "a99ff6a3bfe451e4cc0682ecb3cc82e71740626d59e4845ae34a0a0e45421eab"

# name -> (number of crops (test photos: crops in the "test" split; "heldout" takes all that fit), split, author,
#          licence, origin)
SKIMAGE = {
    "astronaut": (2, "train", "NASA (Eileen Collins portrait)", "Public domain",
                  "scikit-image skimage.data.astronaut"),
    "chelsea": (2, "test", "Stefan van der Walt", "CC0-1.0", "scikit-image skimage.data.chelsea"),
    "coffee": (2, "train", "Rachel Michetti (courtesy Pikolo Espresso Bar)", "CC0-1.0",
               "scikit-image skimage.data.coffee"),
    "rocket": (1, "train", "SpaceX (DSCOVR launch)", "Public domain (CC0-1.0 by SpaceX)",
               "scikit-image skimage.data.rocket"),
    "hubble_deep_field": (1, "train", "NASA / HubbleSite", "Public domain",
                          "scikit-image skimage.data.hubble_deep_field"),
}
SKLEARN = {
    "china": (2, "train", "danielbuechele (Flickr)", "CC BY 2.0", "scikit-learn load_sample_image('china.jpg')"),
    "flower": (1, "test", "vultilion (Flickr)", "CC BY 2.0", "scikit-learn load_sample_image('flower.jpg')"),
}
MATPLOTLIB = {
    "grace_hopper": (1, "train", "U.S. Navy (portrait of Grace Hopper)", "Public domain",
                     "matplotlib get_sample_data('grace_hopper.jpg')"),
}
# file stem -> (crops, split, author, licence)
LOMIRI = {
    "aitzgorri_by_Aitzol_Berasategi": (2, "train", "Aitzol Berasategi, 2018", "CC-BY-4.0"),
    "Bridge_by_Sander_Klootwijk": (2, "train", "Sander Klootwijk, 2018", "CC-BY-SA-4.0"),
    "Dragonfly_by_Bolly": (2, "test", "\"Bolly\", 2018", "CC-BY-SA-4.0"),
    "free_by_Peter_Nerlich": (2, "train", "Peter Nerlich, 2018", "CC-BY-SA-4.0"),
    "friends_by_Aitzol_Berasategi": (2, "train", "Aitzol Berasategi, 2018", "CC-BY-4.0"),
    "greentock_by_Peter_Nerlich": (2, "train", "Peter Nerlich, 2018", "CC-BY-SA-4.0"),
    "life_by_Aitzol_Berasategi": (2, "train", "Aitzol Berasategi, 2018", "CC-BY-4.0"),
    "picosdeeuropa_by_Aitzol_Berasategi": (2, "test", "Aitzol Berasategi, 2018", "CC-BY-4.0"),
    "Picture_0B_by_freespace": (2, "train", "Trevor \"Freespace\", 2018", "CC-BY-4.0"),
    "Picture_1A_by_freespace": (2, "train", "Trevor \"Freespace\", 2018", "CC-BY-4.0"),
    "seeding_by_Clements_Engelhardt": (2, "train", "Clemens Engelhardt, 2018", "CC0-1.0"),
    "sunset_by_Aitzol_Berasategi": (2, "train", "Aitzol Berasategi, 2018", "CC-BY-4.0"),
    "Wine_by_Jakkub_Mede": (2, "test", "Jakub Mede, 2018", "CC-BY-4.0"),
}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _skimage(name: str) -> np.ndarray:
    from skimage import data
    return getattr(data, name)()


def _sklearn(name: str) -> np.ndarray:
    from sklearn.datasets import load_sample_image
    return load_sample_image(f"{name}.jpg")


def _matplotlib(name: str) -> np.ndarray:
    from matplotlib.cbook import get_sample_data
    with Image.open(get_sample_data(f"{name}.jpg", asfileobj=False)) as im:
        return np.asarray(im.convert("RGB"))


def unpack_lomiri(deb: Path, work: Path) -> Path:
    if sha256_file(deb) != LOMIRI_DEB_SHA256:
        sys.exit(f"{deb}: sha256 differs from {LOMIRI_PACKAGE} {LOMIRI_VERSION} ({LOMIRI_DEB_SHA256}); "
                 "the crops would not match the manifest")
    subprocess.run(["dpkg", "-x", str(deb), str(work / "x")], check=True)
    return work / "x" / "usr" / "share" / "backgrounds"


def download_lomiri(work: Path) -> Path:
    try:
        subprocess.run(["apt-get", "download", f"{LOMIRI_PACKAGE}={LOMIRI_VERSION}"], cwd=work, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        sys.exit(f"could not `apt-get download {LOMIRI_PACKAGE}={LOMIRI_VERSION}` ({exc}); "
                 "download the .deb elsewhere and pass --lomiri-deb PATH")
    return next(work.glob(f"{LOMIRI_PACKAGE}_*.deb"))


def shrink(img: np.ndarray) -> np.ndarray:
    """Shrink so the short side is SHORT_SIDE if it exceeds 640 px (MATLAB bicubic, uint8 in/out)."""
    h, w = img.shape[:2]
    if min(h, w) <= 640:
        return img
    s = SHORT_SIDE / min(h, w)
    return imresize_np(img, size=(round(h * s), round(w * s)))


def texture_crops(img: np.ndarray, n: Optional[int]) -> List[Tuple[int, int]]:
    """Top-left corners of up to ``n`` (``None``: as many as fit) non-overlapping CROPxCROP boxes, greedily by
    largest mean gradient; the first ``k`` boxes do not depend on ``n >= k``."""
    g = img.astype(np.float64).mean(axis=2)
    gy, gx = np.gradient(g)
    mag = np.hypot(gx, gy)
    h, w = g.shape
    cands = []
    for top in range(0, h - CROP + 1, GRID):
        for left in range(0, w - CROP + 1, GRID):
            cands.append((float(mag[top:top + CROP, left:left + CROP].mean()), top, left))
    cands.sort(key=lambda c: (-round(c[0], 9), c[1], c[2]))
    chosen: List[Tuple[int, int]] = []
    for _, top, left in cands:
        if all(abs(top - t) >= CROP or abs(left - l) >= CROP for t, l in chosen):
            chosen.append((top, left))
        if len(chosen) == n:
            break
    return chosen


def png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", optimize=False, compress_level=9)
    return buf.getvalue()


def build(out: Path, lomiri_dir: Path) -> Dict:
    sources: List[Tuple[str, Callable[[], np.ndarray], int, str, str, str, str]] = []
    for name, (n, split, author, lic, origin) in SKIMAGE.items():
        sources.append((name, lambda nm=name: _skimage(nm), n, split, author, lic, origin))
    for name, (n, split, author, lic, origin) in SKLEARN.items():
        sources.append((name, lambda nm=name: _sklearn(nm), n, split, author, lic, origin))
    for name, (n, split, author, lic, origin) in MATPLOTLIB.items():
        sources.append((name, lambda nm=name: _matplotlib(nm), n, split, author, lic, origin))
    for stem, (n, split, author, lic) in LOMIRI.items():
        path = lomiri_dir / f"{stem}.jpg"

        def load(p=path):
            with Image.open(p) as im:
                return np.asarray(im.convert("RGB"))
        sources.append((stem.split("_by_")[0].lower(), load, n, split, author, lic,
                        f"Debian {LOMIRI_PACKAGE} {LOMIRI_VERSION}: /usr/share/backgrounds/{stem}.jpg"))

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".embedded.", dir=out.parent))
    tmp.chmod(0o755)
    images, attribution = [], []
    for name, load, n, split, author, lic, origin in sources:
        img = load()
        orig_hw = img.shape[:2]
        img = shrink(img)
        # test photos: every crop that fits; the first n form the small "test" split, the rest only "heldout"
        for k, (top, left) in enumerate(texture_crops(img, None if split == "test" else n)):
            fname = f"{name}_{k}.png"
            data = png_bytes(np.ascontiguousarray(img[top:top + CROP, left:left + CROP]))
            (tmp / fname).write_bytes(data)
            images.append({"file": fname, "split": split if k < n else "heldout", "source": name,
                           "box": [top, left, CROP, CROP],
                           "resized_to": list(img.shape[:2]), "original_size": list(orig_hw),
                           "sha256": hashlib.sha256(data).hexdigest()})
        attribution.append(f"| {name} | {origin} | {author} | {lic} |")
    splits = {s: sorted(i["file"] for i in images if i["split"] == s) for s in ("train", "test")}
    splits["heldout"] = sorted(i["file"] for i in images if i["split"] in ("test", "heldout"))
    manifest = {"name": "restore-core embedded photos", "version": 2, "crop": CROP,
                "gray": "derived on load: round(0.299 R + 0.587 G + 0.114 B)",
                "splits": splits,
                "images": sorted(images, key=lambda i: i["file"])}
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    (tmp / "ATTRIBUTION.md").write_text(
        "# Embedded photos: sources and licences\n\n"
        f"{CROP}x{CROP} crops (after shrinking photos larger than 640 px to a {SHORT_SIDE} px short side) "
        "made by `data_scripts/build_embedded.py`. The crops are adaptations of the works below and keep "
        "their licences: CC BY / CC BY-SA works require attribution (given here) and CC BY-SA adaptations are "
        "shared under the same licence.\n\n"
        "| name | source | author | licence |\n|---|---|---|---|\n" + "\n".join(attribution) + "\n\n"
        "Licence texts: CC0-1.0 https://creativecommons.org/publicdomain/zero/1.0/ ; "
        "CC BY 2.0 https://creativecommons.org/licenses/by/2.0/ ; "
        "CC BY 4.0 https://creativecommons.org/licenses/by/4.0/ ; "
        "CC BY-SA 4.0 https://creativecommons.org/licenses/by-sa/4.0/ .\n")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return manifest


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path,
                    default=Path(__file__).resolve().parents[1] / "restore_core" / "data" / "embedded")
    ap.add_argument("--lomiri-deb", type=Path, help=f"path of {LOMIRI_PACKAGE}_{LOMIRI_VERSION}_all.deb")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        deb = args.lomiri_deb or download_lomiri(work)
        manifest = build(args.out.resolve(), unpack_lomiri(deb, work))
    total = sum((args.out / i["file"]).stat().st_size for i in manifest["images"])
    print(f"wrote {len(manifest['images'])} crops ({len(manifest['splits']['train'])} train, "
          f"{len(manifest['splits']['test'])} test, {len(manifest['splits']['heldout'])} held out), "
          f"{total / 1e6:.2f} MB, to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
