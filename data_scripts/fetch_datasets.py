#!/usr/bin/env python
"""Download, verify and unpack the real benchmark datasets under a data root (the script form of
``restore-core data fetch``; the catalog and the downloader live in ``restore_core.data.catalog`` and
``restore_core.data.download``).

Usage::

    python data_scripts/fetch_datasets.py --list
    python data_scripts/fetch_datasets.py DIV2K Set5 Set14 B100 Urban100 --root data
    python data_scripts/fetch_datasets.py --verify DIV2K --root data

Downloads resume after an interruption (HTTP Range), are checked against published sha256 where they exist
(DIV2K), and unpack atomically into ``<root>/<name>``. Datasets behind a form or Google Drive (Manga109, SIDD,
GoPro, TNO, ...) stop with instructions for the manual step.
"""
from __future__ import annotations

import argparse
import os
import sys

from restore_core.cli import main as cli_main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("names", nargs="*", metavar="NAME")
    ap.add_argument("--root", default=os.environ.get("RESTORE_CORE_DATA", "data"))
    ap.add_argument("--list", action="store_true", help="list the catalog")
    ap.add_argument("--verify", action="store_true", help="check instead of fetching")
    args = ap.parse_args(argv)
    if args.list:
        return cli_main(["data", "list"])
    if not args.names and not args.verify:
        ap.error("give dataset names (see --list)")
    action = "verify" if args.verify else "fetch"
    return cli_main(["data", action, *args.names, "--root", args.root])


if __name__ == "__main__":
    sys.exit(main())
