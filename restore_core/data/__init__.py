"""Data: image IO, degradations (MATLAB bicubic, AWGN, JPEG, Bayer mosaic, blur), datasets, fusion pairs,
the embedded photo set, and the catalog/downloader of the real benchmark datasets.

Quick reference::

    from restore_core.data import DegradedDataset, embedded_images, imresize, parse_degradation
    ds = DegradedDataset("embedded:train", "sr_x4", patch_size=64, augment=True, seed=0)
    sample = ds[0]          # {"lq": (3, 16, 16), "hq": (3, 64, 64), "name": "aitzgorri_0"}
"""
from .catalog import CATALOG, DatasetEntry, get_dataset, list_datasets
from .datasets import (DegradedDataset, PairedFolderDataset, aligned_random_crop, describe_images, dihedral,
                       list_images, resolve_images)
from .download import (ChecksumError, DownloadError, ManualStepRequired, download_file, fetch_dataset,
                       verify_dataset)
from .degradations import (Degradation, add_gaussian_noise, bayer_mask, bayer_mosaic, bicubic_downsample, blur,
                           gaussian_kernel, image_seed, jpeg_compress, mod_crop, motion_kernel, parse_degradation,
                           quantize)
from .embedded import describe_split, embedded_images, embedded_paths, load_manifest, verify_embedded
from .fusion_pairs import (FUSION_KINDS, FusionFolderDataset, SyntheticFusionDataset, ihc_stain_pair, ir_vis_pair,
                           multi_exposure_pair, multi_focus_pair)
from .imresize import contributions, imresize, imresize_np, resize_matrix
from .io import (ImageFormatError, convert_channels, gray_8bit, read_image, read_image_uint, tensor_to_uint, write_image,
                 write_image_uint)

__all__ = [
    "CATALOG", "DatasetEntry", "get_dataset", "list_datasets",
    "ChecksumError", "DownloadError", "ManualStepRequired", "download_file", "fetch_dataset", "verify_dataset",
    "DegradedDataset", "PairedFolderDataset", "aligned_random_crop", "describe_images", "dihedral", "list_images",
    "resolve_images",
    "Degradation", "add_gaussian_noise", "bayer_mask", "bayer_mosaic", "bicubic_downsample", "blur",
    "gaussian_kernel", "image_seed", "jpeg_compress", "mod_crop", "motion_kernel", "parse_degradation", "quantize",
    "describe_split", "embedded_images", "embedded_paths", "load_manifest", "verify_embedded",
    "FUSION_KINDS", "FusionFolderDataset", "SyntheticFusionDataset", "ihc_stain_pair", "ir_vis_pair", "multi_exposure_pair",
    "multi_focus_pair",
    "contributions", "imresize", "imresize_np", "resize_matrix",
    "ImageFormatError", "convert_channels", "gray_8bit", "read_image", "read_image_uint", "tensor_to_uint", "write_image",
    "write_image_uint",
]
