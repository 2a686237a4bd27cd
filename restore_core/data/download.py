"""Download, verify and unpack the catalog's datasets (:mod:`restore_core.data.catalog`) under a data root.

* Downloads go to ``<root>/.downloads/<file>.part`` and resume with an HTTP ``Range`` request after an interrupted
  transfer (a dropped connection is retried ``retries`` times, each time from where it stopped); a server that
  ignores ``Range`` (status 200) restarts the file from the beginning.
* The finished file is checked against the published sha256 (and size) before it is renamed into place; a
  mismatch deletes it and raises :class:`ChecksumError` naming both digests.
* Archives (zip, tar, tar.gz/tgz) unpack into a temporary folder beside the target, which is renamed into place
  only when extraction finished (members escaping the folder are refused). Plain files are copied the same way.
* ``<root>/<name>/.fetched.json`` records each file's sha256 and the time; ``verify_dataset`` re-checks the layout.
* Datasets that need a human (a licence form, Google Drive) raise :class:`ManualStepRequired` with instructions.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import socket
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Dict, List, Optional, Union

from tqdm.auto import tqdm

from .catalog import DatasetEntry, RemoteFile, get_dataset
from .io import is_image_file

PathLike = Union[str, os.PathLike]
MARKER = ".fetched.json"


class DownloadError(RuntimeError):
    """A transfer that could not be completed."""


class ChecksumError(DownloadError):
    """A downloaded file whose sha256 or size differs from the published one."""


class ManualStepRequired(RuntimeError):
    """The dataset cannot be fetched by a script; the message says what to do."""


def sha256_file(path: PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _open(url: str, offset: int, timeout: float):
    req = urllib.request.Request(url, headers={"User-Agent": "restore-core", **(
        {"Range": f"bytes={offset}-"} if offset else {})})
    return urllib.request.urlopen(req, timeout=timeout)


def download_file(url: str, dest: PathLike, sha256: Optional[str] = None, size: Optional[int] = None,
                  retries: int = 5, timeout: float = 60.0, progress: bool = True, chunk: int = 1 << 16) -> Path:
    """Download ``url`` to ``dest`` with resume, verify, and rename into place. Returns ``dest``.

    An existing ``dest`` whose checksum matches is kept (no transfer). A partial ``dest.part`` is resumed.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists() and (sha256 is None or sha256_file(dest) == sha256):
        return dest
    part = dest.with_name(dest.name + ".part")
    attempt = 0
    while True:
        offset = part.stat().st_size if part.exists() else 0
        try:
            with _open(url, offset, timeout) as resp:
                status = getattr(resp, "status", 200)
                if offset and status != 206:  # server ignored Range: start over
                    offset = 0
                length = resp.headers.get("Content-Length")
                total = offset + int(length) if length is not None else size
                with open(part, "ab" if offset else "wb") as f, tqdm(
                        total=total, initial=offset, unit="B", unit_scale=True, desc=dest.name,
                        disable=not progress, leave=False) as bar:
                    while True:
                        block = resp.read(chunk)
                        if not block:
                            break
                        f.write(block)
                        bar.update(len(block))
                got = part.stat().st_size
                if total is not None and got < total:
                    raise http.client.IncompleteRead(b"", total - got)
            break
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and part.exists():  # asked past the end: the part is already complete
                break
            raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError, socket.timeout,
                TimeoutError) as exc:
            attempt += 1
            if attempt > retries:
                raise DownloadError(f"{url}: transfer failed after {retries} retries ({exc}); "
                                    f"the partial file {part} is kept and the next run resumes it") from None
            time.sleep(min(2.0 ** (attempt - 1) * 0.1, 5.0))
    got_size = part.stat().st_size
    if size is not None and got_size != size:
        part.unlink()
        raise ChecksumError(f"{dest.name}: size {got_size} bytes, expected {size}; the download was removed")
    if sha256 is not None:
        digest = sha256_file(part)
        if digest != sha256:
            part.unlink()
            raise ChecksumError(f"{dest.name}: sha256 {digest} does not match the published {sha256}; "
                                "the download was removed (a corrupted transfer or a changed file upstream)")
    os.replace(part, dest)
    return dest


def _safe_members_tar(tf: tarfile.TarFile, target: Path) -> List[tarfile.TarInfo]:
    out = []
    for m in tf.getmembers():
        p = (target / m.name).resolve()
        if not str(p).startswith(str(target.resolve()) + os.sep) and p != target.resolve():
            raise DownloadError(f"archive member {m.name!r} would be written outside {target}")
        if m.issym() or m.islnk() or m.isdev():
            continue
        out.append(m)
    return out


def unpack(archive: PathLike, target: PathLike) -> Path:
    """Unpack a zip/tar(.gz) archive (or copy a plain file) into ``target``, atomically per archive.

    Contents are extracted into a temporary folder next to ``target`` and then moved in entry by entry with
    ``os.replace``; on any error nothing is left in ``target`` from this archive.
    """
    archive, target = Path(archive), Path(target)
    target.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".unpack.", dir=target))
    try:
        name = archive.name.lower()
        if name.endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    p = (tmp / info.filename).resolve()
                    if not str(p).startswith(str(tmp.resolve()) + os.sep):
                        raise DownloadError(f"archive member {info.filename!r} would be written outside {target}")
                zf.extractall(tmp)
        elif name.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")):
            with tarfile.open(archive) as tf:
                tf.extractall(tmp, members=_safe_members_tar(tf, tmp))
        else:
            shutil.copy2(archive, tmp / archive.name)
        for entry in sorted(tmp.iterdir()):
            dest = target / entry.name
            if dest.exists():
                if dest.is_dir() and entry.is_dir():
                    _merge_dir(entry, dest)
                    continue
                if dest.is_dir():
                    shutil.rmtree(dest)
                else:
                    dest.unlink()
            os.replace(entry, dest)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as exc:
        raise DownloadError(f"{archive} is not a valid archive ({exc})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _merge_dir(src: Path, dst: Path) -> None:
    for entry in src.iterdir():
        d = dst / entry.name
        if entry.is_dir() and d.is_dir():
            _merge_dir(entry, d)
        else:
            if d.is_dir():
                shutil.rmtree(d)
            os.replace(entry, d)


def fetch_dataset(entry: Union[str, DatasetEntry], root: PathLike, progress: bool = True, retries: int = 5,
                  keep_archives: bool = True) -> Path:
    """Download, verify and unpack a catalog dataset into ``<root>/<name>``; returns that folder."""
    entry = get_dataset(entry) if isinstance(entry, str) else entry
    if entry.manual:
        raise ManualStepRequired(f"{entry.name} needs a manual step: {entry.manual}")
    if not entry.files:
        raise ManualStepRequired(f"{entry.name} has no downloadable files in the catalog")
    root = Path(root)
    out = root / entry.name
    record: Dict[str, Dict] = {}
    files = tqdm(entry.files, desc=f"fetch {entry.name}", unit="file", disable=not progress or len(entry.files) < 2)
    for rf in files:
        local = download_file(rf.url, root / ".downloads" / rf.filename, rf.sha256, rf.size, retries=retries,
                              progress=progress)
        digest = rf.sha256 or sha256_file(local)
        unpack(local, out / rf.unpack_to)
        record[rf.filename] = {"url": rf.url, "sha256": digest, "published_sha256": rf.sha256 is not None}
        if not keep_archives:
            local.unlink()
    marker = {"name": entry.name, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "files": record}
    tmp = out / (MARKER + ".tmp")
    tmp.write_text(json.dumps(marker, indent=1))
    os.replace(tmp, out / MARKER)
    return out


def verify_dataset(entry: Union[str, DatasetEntry], root: PathLike, check_archives: bool = True) -> List[str]:
    """Problems with a fetched dataset (empty list = fine): missing subset folders, wrong image counts, kept
    archives whose sha256 differs from the published or recorded one."""
    entry = get_dataset(entry) if isinstance(entry, str) else entry
    root = Path(root)
    out = root / entry.name
    problems = []
    if not out.is_dir():
        return [f"{out} does not exist (run `restore-core data fetch {entry.name} --root {root}`)"]
    recorded = {}
    if (out / MARKER).exists():
        recorded = json.loads((out / MARKER).read_text()).get("files", {})
    elif entry.files:
        problems.append(f"{out / MARKER} missing: the fetch did not complete")
    for subset, rel in entry.layout.items():
        d = out / rel
        if not d.is_dir():
            problems.append(f"subset {subset!r}: folder {d} missing")
            continue
        want = entry.counts.get(subset)
        if want is not None:
            n = sum(1 for p in d.iterdir() if p.is_file() and is_image_file(p))
            if n != want:
                problems.append(f"subset {subset!r}: {n} images in {d}, expected {want}")
    if check_archives:
        for rf in entry.files:
            local = root / ".downloads" / rf.filename
            want = rf.sha256 or recorded.get(rf.filename, {}).get("sha256")
            if local.exists() and want and sha256_file(local) != want:
                problems.append(f"{local}: sha256 differs from {'published' if rf.sha256 else 'recorded'} {want}")
    return problems


def describe(entry: DatasetEntry) -> str:
    """One line per fact of an entry (used by ``restore-core data list NAME``)."""
    lines = [f"{entry.name} ({entry.task}): {entry.description}"]
    if entry.homepage:
        lines.append(f"  homepage: {entry.homepage}")
    if entry.license:
        lines.append(f"  licence: {entry.license}")
    for rf in entry.files:
        lines.append(f"  file: {rf.url}" + (f"  sha256 {rf.sha256}" if rf.sha256 else "  (no published sha256)"))
    for k, v in entry.layout.items():
        lines.append(f"  subset {k}: <root>/{entry.name}/{v}" + (f" ({entry.counts[k]} images)"
                                                                 if k in entry.counts else ""))
    if entry.manual:
        lines.append(f"  manual step: {entry.manual}")
    return "\n".join(lines)


__all__ = ["ChecksumError", "DownloadError", "ManualStepRequired", "RemoteFile", "describe", "download_file",
           "fetch_dataset", "sha256_file", "unpack", "verify_dataset"]
