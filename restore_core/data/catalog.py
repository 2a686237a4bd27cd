"""Catalog of the real datasets the papers train and test on: where to get them, checksums, layout.

Shared by ``restore-core data`` and ``data_scripts/``. Each :class:`DatasetEntry` lists its archives
(:class:`RemoteFile`: url, sha256 where one is published, size), where each archive unpacks under the data root,
the folders holding each subset once unpacked (``layout``, relative to ``<root>/<name>``) and, where the files
cannot be fetched by a script (a licence form, Google Drive, a web gallery), a ``manual`` note saying what to do.

Checksums: DIV2K's sha256 and sizes are those published by TensorFlow Datasets
(``tensorflow_datasets/url_checksums/div2k.txt``). The other hosts publish none: their archives are recorded by
``restore-core data fetch`` on first download (``<root>/<name>/.fetched.json``) and ``data verify`` checks the
files against that record. The URLs could not be tried from the machine this was written on (no internet);
they are the hosts the datasets' authors or the papers' repositories point to.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable archive (zip, tar, tar.gz) or plain file."""

    url: str
    filename: str
    sha256: Optional[str] = None
    size: Optional[int] = None
    unpack_to: str = "."  # folder under <root>/<name> the archive's contents (or the plain file) go to


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    task: str  # "sr" | "denoise" | "car" | "deblur" | "fusion" | "train"
    description: str
    files: Tuple[RemoteFile, ...] = ()
    layout: Dict[str, str] = field(default_factory=dict)  # subset -> folder under <root>/<name>
    counts: Dict[str, int] = field(default_factory=dict)  # subset -> expected number of images
    manual: Optional[str] = None  # a step a script cannot do; fetch stops with this message
    license: str = ""
    homepage: str = ""

    def subset_dir(self, root, subset: str):
        if subset not in self.layout:
            raise KeyError(f"{self.name} has no subset {subset!r}; known: {', '.join(sorted(self.layout))}")
        return Path(root) / self.name / self.layout[subset]


_DIV2K = "https://data.vision.ee.ethz.ch/cvl/DIV2K/"
_EDSR_BENCH = RemoteFile("https://cv.snu.ac.kr/research/EDSR/benchmark.tar", "benchmark.tar")


def _benchmark(name: str, n: int) -> DatasetEntry:
    return DatasetEntry(
        name=name, task="sr",
        description=f"{name} SR test set (HR + MATLAB-bicubic LR x2/x3/x4) from EDSR's benchmark.tar",
        files=(_EDSR_BENCH,),
        layout={"hr": f"benchmark/{name}/HR", **{f"lr_x{s}": f"benchmark/{name}/LR_bicubic/X{s}" for s in (2, 3, 4)}},
        counts={"hr": n}, homepage="https://github.com/sanghyun-son/EDSR-PyTorch",
        license="research use; see the original dataset pages")


CATALOG: Dict[str, DatasetEntry] = {e.name: e for e in [
    DatasetEntry(
        name="DIV2K", task="train",
        description="DIV2K 2K-resolution photos: 800 train + 100 valid HR, MATLAB-bicubic LR x2/x3/x4",
        files=tuple(RemoteFile(_DIV2K + f, f, sha, size) for f, size, sha in [
            ("DIV2K_train_HR.zip", 3530603713, "9d0b9c463f6e35b6c62cc6a930ee2224f670b34c1df841a57670f9acf0f6c335"),
            ("DIV2K_valid_HR.zip", 448993893, "20dd31fd84d777bc1cf5d6b7654a3f569c0aec74458ae094122ad1d0489900fc"),
            ("DIV2K_train_LR_bicubic_X2.zip", 925390592,
             "a53a424317575838dadce4bcd97cf7b744d6855f43740ed5f0245af3cf4bd850"),
            ("DIV2K_train_LR_bicubic_X3.zip", 427847282,
             "ad5c8e5507e2765823d3c2c5bd0934842efcd487c5370604c224090898b3163a"),
            ("DIV2K_train_LR_bicubic_X4.zip", 246914039,
             "f006b837f4eb52b82909aa01478e6d6d199eefce932179491d0c9dbb706dde3a"),
            ("DIV2K_valid_LR_bicubic_X2.zip", 117763600,
             "60eed9875c697df51204aa579e2a699e1d5215095788a097ff54dd17e2664d57"),
            ("DIV2K_valid_LR_bicubic_X3.zip", 54513392,
             "04b9a2ed3b4a0715d3924d3ae8514830c3328fac8d30512ce716d6f419e052a3"),
            ("DIV2K_valid_LR_bicubic_X4.zip", 31505881,
             "a50a5d1c4b88de4e8d300d8fb2b904c52fe93b2b298a4899697760d7cbb6d553"),
        ]),
        layout={"train_hr": "DIV2K_train_HR", "valid_hr": "DIV2K_valid_HR",
                **{f"train_lr_x{s}": f"DIV2K_train_LR_bicubic/X{s}" for s in (2, 3, 4)},
                **{f"valid_lr_x{s}": f"DIV2K_valid_LR_bicubic/X{s}" for s in (2, 3, 4)}},
        counts={"train_hr": 800, "valid_hr": 100, "train_lr_x2": 800, "valid_lr_x2": 100},
        license="academic research only", homepage="https://data.vision.ee.ethz.ch/cvl/DIV2K/"),
    DatasetEntry(
        name="Flickr2K", task="train", description="Flickr2K 2650 2K photos (with DIV2K = DF2K), HR + bicubic LR",
        files=(RemoteFile("https://cv.snu.ac.kr/research/EDSR/Flickr2K.tar", "Flickr2K.tar"),),
        layout={"hr": "Flickr2K/Flickr2K_HR", **{f"lr_x{s}": f"Flickr2K/Flickr2K_LR_bicubic/X{s}" for s in (2, 3, 4)}},
        counts={"hr": 2650}, license="Flickr photos, research use",
        homepage="https://github.com/sanghyun-son/EDSR-PyTorch"),
    _benchmark("Set5", 5), _benchmark("Set14", 14), _benchmark("B100", 100), _benchmark("Urban100", 100),
    DatasetEntry(
        name="Manga109", task="sr", description="Manga109 109 manga volumes' covers/pages (SR test set)",
        layout={"hr": "HR"}, counts={"hr": 109},
        manual=("Manga109 is distributed by its authors after a request form: ask at http://www.manga109.org/en/ "
                "and put the 109 HR PNGs used for SR into <root>/Manga109/HR (make LR with `DegradedDataset(..., "
                "'sr_xS')` or MATLAB)."),
        license="academic use after request", homepage="http://www.manga109.org/en/"),
    DatasetEntry(
        name="CBSD68", task="denoise", description="CBSD68: the 68 BSD test images in colour (denoising test set)",
        files=(RemoteFile("https://github.com/clausmichele/CBSD68-dataset/archive/refs/heads/master.zip",
                          "CBSD68-dataset-master.zip"),),
        layout={"hq": "CBSD68-dataset-master/CBSD68/original_png"}, counts={"hq": 68},
        license="BSD images, research use", homepage="https://github.com/clausmichele/CBSD68-dataset"),
    DatasetEntry(
        name="Kodak24", task="denoise", description="Kodak24: 24 Kodak PhotoCD images, 768x512",
        files=tuple(RemoteFile(f"https://r0k.us/graphics/kodak/kodak/kodim{i:02d}.png", f"kodim{i:02d}.png",
                               unpack_to="HR") for i in range(1, 25)),
        layout={"hq": "HR"}, counts={"hq": 24}, license="released by Kodak for unrestricted use",
        homepage="https://r0k.us/graphics/kodak/"),
    DatasetEntry(
        name="McMaster", task="denoise", description="McMaster (CDM) 18 colour crops, 500x500",
        layout={"hq": "HQ"}, counts={"hq": 18},
        manual=("McMaster is published as a zip on the authors' page "
                "(https://www4.comp.polyu.edu.hk/~cslzhang/CDM_Dataset.htm); denoising repos (Restormer, MambaIR) "
                "ship it in their Google-Drive test sets. Put the 18 images into <root>/McMaster/HQ."),
        homepage="https://www4.comp.polyu.edu.hk/~cslzhang/CDM_Dataset.htm"),
    DatasetEntry(
        name="Classic5", task="car", description="Classic5: 5 gray images for JPEG artefact removal",
        layout={"hq": "HQ"}, counts={"hq": 5},
        manual=("Classic5 is shipped inside JPEG-restoration repositories' test sets (e.g. ARCNN, FBCNN, "
                "MambaIR's Google-Drive archive); put the 5 gray images into <root>/Classic5/HQ."),
        homepage="https://github.com/jiaxi-jiang/FBCNN"),
    DatasetEntry(
        name="LIVE1", task="car", description="LIVE1: 29 colour images for JPEG artefact removal",
        layout={"hq": "HQ"}, counts={"hq": 29},
        manual=("LIVE1 comes from the LIVE image-quality database (request form at "
                "https://live.ece.utexas.edu/research/quality/subjective.htm) or JPEG-restoration repos' test sets; "
                "put the 29 reference images into <root>/LIVE1/HQ."),
        homepage="https://live.ece.utexas.edu/research/quality/subjective.htm"),
    DatasetEntry(
        name="SIDD", task="denoise", description="SIDD smartphone real-noise dataset (Medium sRGB train, validation)",
        layout={"train": "SIDD_Medium_Srgb/Data", "val": "val"},
        manual=("SIDD is hosted on Google Drive / the authors' site behind agreement links "
                "(https://abdokamel.github.io/sidd/). Download SIDD-Medium sRGB and the validation mat files and "
                "unpack them into <root>/SIDD/SIDD_Medium_Srgb and <root>/SIDD/val."),
        license="research use", homepage="https://abdokamel.github.io/sidd/"),
    DatasetEntry(
        name="GoPro", task="deblur", description="GoPro dynamic-scene deblurring: 2103 train / 1111 test pairs",
        layout={"train": "train", "test": "test"}, counts={},
        manual=("GoPro is hosted on Google Drive (https://seungjunnah.github.io/Datasets/gopro); download "
                "GOPRO_Large.zip and unpack it so that <root>/GoPro/train and <root>/GoPro/test hold the sequence "
                "folders (each with blur/ and sharp/)."),
        license="CC BY 4.0", homepage="https://seungjunnah.github.io/Datasets/gopro"),
    DatasetEntry(
        name="MSRS", task="fusion", description="MSRS multi-spectral road scenes: aligned infrared/visible pairs",
        files=(RemoteFile("https://github.com/Linfeng-Tang/MSRS/archive/refs/heads/main.zip", "MSRS-main.zip"),),
        layout={"train_ir": "MSRS-main/train/ir", "train_vi": "MSRS-main/train/vi",
                "test_ir": "MSRS-main/test/ir", "test_vi": "MSRS-main/test/vi"},
        counts={"test_ir": 361, "test_vi": 361}, homepage="https://github.com/Linfeng-Tang/MSRS"),
    DatasetEntry(
        name="TNO", task="fusion", description="TNO Image Fusion Dataset (infrared/visible night scenes)",
        layout={"pairs": "."},
        manual=("TNO is on figshare (https://figshare.com/articles/dataset/TNO_Image_Fusion_Dataset/1008029); "
                "download it with a browser and unpack under <root>/TNO. Fusion papers use a 21- or 25-pair subset; "
                "list the pairs you use."),
        license="CC BY 4.0", homepage="https://figshare.com/articles/dataset/TNO_Image_Fusion_Dataset/1008029"),
    DatasetEntry(
        name="RoadScene", task="fusion", description="RoadScene 221 aligned infrared/visible road pairs",
        files=(RemoteFile("https://github.com/hanna-xu/RoadScene/archive/refs/heads/master.zip",
                          "RoadScene-master.zip"),),
        layout={"ir": "RoadScene-master/cropinfrared", "vi": "RoadScene-master/crop_HR_visible"},
        counts={"ir": 221, "vi": 221}, homepage="https://github.com/hanna-xu/RoadScene"),
    DatasetEntry(
        name="Harvard", task="fusion", description="Harvard Whole Brain Atlas (AANLIB) MRI/CT/PET/SPECT slices",
        layout={"pairs": "."},
        manual=("AANLIB (http://www.med.harvard.edu/AANLIB/home.html) is a web atlas, not an archive; fusion papers "
                "use registered pairs re-distributed in their repositories. Put MRI-CT / MRI-PET / MRI-SPECT pairs "
                "under <root>/Harvard/<pair type>/{A,B}."),
        homepage="http://www.med.harvard.edu/AANLIB/home.html"),
]}


def list_datasets() -> List[str]:
    return sorted(CATALOG)


def get_dataset(name: str) -> DatasetEntry:
    """The catalog entry ``name`` (case-insensitive); KeyError listing the known names otherwise."""
    for k, v in CATALOG.items():
        if k.lower() == name.lower():
            return v
    raise KeyError(f"unknown dataset {name!r}; known: {', '.join(list_datasets())}")
