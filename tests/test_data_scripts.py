"""Dataset downloader against a local HTTP server on 127.0.0.1: unpack layout, sha256 verification, corrupted
archive (nothing left behind), dropped connection (resumed with Range), manual steps; the CLI; the embedded
dataset builder's helpers."""
import hashlib
import http.server
import io
import json
import os
import sys
import tarfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from restore_core.cli import main as cli_main
from restore_core.data.catalog import CATALOG, DatasetEntry, RemoteFile, get_dataset
from restore_core.data.download import (ChecksumError, DownloadError, ManualStepRequired, download_file,
                                        fetch_dataset, unpack, verify_dataset)


def _png(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _zip(files) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


def _tgz(files) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class _Server:
    """Serves ``files`` (path -> bytes) with Range support; paths in ``drop_once`` send half the body once and
    then close the connection, as a flaky host does."""

    def __init__(self):
        self.files, self.drop_once, self.log = {}, set(), []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                owner.log.append((self.path, self.headers.get("Range")))
                data = owner.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                start = 0
                rng = self.headers.get("Range")
                if rng:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.path in owner.drop_once:
                    owner.drop_once.discard(self.path)
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    with _Server() as s:
        yield s


def _entry(server, name="Toy", corrupt=False):
    hr = {f"Toy_HR/{i:04d}.png": _png(i) for i in range(3)}
    lr = {f"Toy_LR/X2/{i:04d}x2.png": _png(10 + i) for i in range(3)}
    z, t = _zip(hr), _tgz(lr)
    server.files["/hr.zip"] = z
    server.files["/lr.tar.gz"] = t
    sha_z = hashlib.sha256(z).hexdigest()
    if corrupt:
        server.files["/hr.zip"] = z[:100] + bytes([z[100] ^ 0xFF]) + z[101:]
    return DatasetEntry(name=name, task="sr", description="toy",
                        files=(RemoteFile(server.url + "/hr.zip", "hr.zip", sha_z, len(z)),
                               RemoteFile(server.url + "/lr.tar.gz", "lr.tar.gz")),
                        layout={"hr": "Toy_HR", "lr_x2": "Toy_LR/X2"}, counts={"hr": 3, "lr_x2": 3})


def test_fetch_unpacks_layout_and_verifies(server, tmp_path):
    entry = _entry(server)
    out = fetch_dataset(entry, tmp_path, progress=False)
    assert sorted(p.name for p in (out / "Toy_HR").iterdir()) == ["0000.png", "0001.png", "0002.png"]
    assert (out / "Toy_LR" / "X2" / "0001x2.png").read_bytes() == _png(11)
    assert verify_dataset(entry, tmp_path) == []
    rec = json.loads((out / ".fetched.json").read_text())["files"]
    assert rec["lr.tar.gz"]["sha256"] == hashlib.sha256(server.files["/lr.tar.gz"]).hexdigest()
    assert rec["hr.zip"]["published_sha256"] is True and rec["lr.tar.gz"]["published_sha256"] is False
    # a second fetch reuses the verified archives: no new transfer
    n = len(server.log)
    fetch_dataset(entry, tmp_path, progress=False)
    assert len(server.log) == n
    # verify notices a missing image and a changed kept archive
    (out / "Toy_HR" / "0002.png").unlink()
    (tmp_path / ".downloads" / "lr.tar.gz").write_bytes(b"x")
    problems = verify_dataset(entry, tmp_path)
    assert any("2 images" in p for p in problems) and any("lr.tar.gz" in p for p in problems)


def test_corrupted_archive_raises_and_leaves_nothing(server, tmp_path):
    entry = _entry(server, corrupt=True)
    with pytest.raises(ChecksumError, match="sha256 .* does not match the published"):
        fetch_dataset(entry, tmp_path, progress=False)
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert leftovers == []
    assert not (tmp_path / "Toy").exists()


def test_dropped_connection_resumes_with_range(server, tmp_path):
    entry = _entry(server)
    server.drop_once.add("/hr.zip")
    fetch_dataset(entry, tmp_path, progress=False, retries=2)
    hr_requests = [r for p, r in server.log if p == "/hr.zip"]
    assert hr_requests[0] is None and hr_requests[1] is not None and hr_requests[1].startswith("bytes=")
    assert int(hr_requests[1][6:-1]) == len(server.files["/hr.zip"]) // 2  # resumed where the drop happened
    assert verify_dataset(entry, tmp_path) == []


def test_partial_file_resumed_across_runs(server, tmp_path):
    data = bytes(range(256)) * 40
    server.files["/blob.bin"] = data
    dest = tmp_path / "blob.bin"
    (tmp_path / "blob.bin.part").write_bytes(data[:1000])
    download_file(server.url + "/blob.bin", dest, hashlib.sha256(data).hexdigest(), progress=False)
    assert dest.read_bytes() == data and server.log[-1][1] == "bytes=1000-"
    assert not (tmp_path / "blob.bin.part").exists()


def test_http_errors_and_retries(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_file(server.url + "/missing.zip", tmp_path / "m.zip", progress=False)
    server.files["/flaky.bin"] = b"0123456789" * 100
    server.drop_once.add("/flaky.bin")
    with pytest.raises(DownloadError, match="after 0 retries.*kept"):
        download_file(server.url + "/flaky.bin", tmp_path / "f.bin", progress=False, retries=0)
    assert (tmp_path / "f.bin.part").stat().st_size == 500  # kept for the next run


def test_unpack_refuses_escaping_members(tmp_path):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(_zip({"../evil.txt": b"x"}))
    with pytest.raises(DownloadError, match="outside"):
        unpack(bad, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists() and list((tmp_path / "out").iterdir()) == []
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip at all")
    with pytest.raises(DownloadError, match="not a valid archive"):
        unpack(junk, tmp_path / "out2")


def test_manual_step_and_catalog():
    with pytest.raises(ManualStepRequired, match="Google Drive"):
        fetch_dataset("GoPro", "/nonexistent-root")
    for name in ["DIV2K", "Flickr2K", "Set5", "Set14", "B100", "Urban100", "Manga109", "CBSD68", "Kodak24",
                 "McMaster", "Classic5", "LIVE1", "SIDD", "GoPro", "MSRS", "TNO", "RoadScene", "Harvard"]:
        e = get_dataset(name.lower())
        assert e.files or e.manual, name
    div2k = CATALOG["DIV2K"]
    assert all(f.sha256 and len(f.sha256) == 64 and f.size for f in div2k.files)
    hr = next(f for f in div2k.files if f.filename == "DIV2K_train_HR.zip")
    assert hr.sha256 == "9d0b9c463f6e35b6c62cc6a930ee2224f670b34c1df841a57670f9acf0f6c335"  # TFDS-published
    with pytest.raises(KeyError, match="known: B100"):
        get_dataset("ImageNet")


def test_cli(capsys, tmp_path):
    assert cli_main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "DIV2K" in out and "embedded   all      bundled  45 photo crops" in out
    assert cli_main(["data", "list", "embedded"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" (")[0] for line in lines] == ["train", "test", "heldout"]
    assert lines[2].startswith("heldout (16 held-out crops 192x192 of 5 test photos): chelsea_0.png, dragonfly_0.png")
    assert cli_main(["data", "list", "Set5"]) == 0
    assert "benchmark/Set5/HR" in capsys.readouterr().out
    assert cli_main(["data", "verify", "embedded"]) == 0
    assert cli_main(["data", "fetch", "SIDD", "--root", str(tmp_path)]) == 2
    assert "manual step" in capsys.readouterr().err
    assert cli_main(["data", "verify", "Set5", "--root", str(tmp_path)]) == 1
    assert cli_main(["data", "fetch", "NoSuch", "--root", str(tmp_path)]) == 2


# --- embedded builder helpers -------------------------------------------------------------------------------------
def _builder():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data_scripts"))
    try:
        import build_embedded
    finally:
        sys.path.pop(0)
    return build_embedded


def test_builder_crops_deterministic_non_overlapping():
    b = _builder()
    img = np.random.default_rng(0).integers(0, 256, (300, 451, 3), dtype=np.uint8)
    img[:, :200] = 128  # flat left part: no crop should start there
    boxes = b.texture_crops(img, 3)
    assert boxes == b.texture_crops(img, 3)
    for i, (t1, l1) in enumerate(boxes):
        assert l1 + b.CROP > 200
        for t2, l2 in boxes[i + 1:]:
            assert abs(t1 - t2) >= b.CROP or abs(l1 - l2) >= b.CROP
    # the "heldout" cut (n=None): every crop that still fits, the first ones unchanged, none overlapping
    photo = np.random.default_rng(1).integers(0, 256, (480, 720, 3), dtype=np.uint8)
    every = b.texture_crops(photo, None)
    assert every[:2] == b.texture_crops(photo, 2) and len(every) > 2
    overlaps = lambda t, l, boxes: any(abs(t - t2) < b.CROP and abs(l - l2) < b.CROP for t2, l2 in boxes)
    assert not any(overlaps(t, l, every[:i] + every[i + 1:]) for i, (t, l) in enumerate(every))
    assert all(overlaps(t, l, every) for t in range(0, 480 - b.CROP + 1, b.GRID)
               for l in range(0, 720 - b.CROP + 1, b.GRID))   # maximal: no grid box is left free
    big = np.zeros((1000, 1500, 3), np.uint8)
    assert b.shrink(big).shape == (480, 720, 3)
    assert b.shrink(img) is img


def test_builder_sources_match_manifest():
    b = _builder()
    from restore_core.data import load_manifest

    m = load_manifest()
    per_source = {}
    for item in m["images"]:   # a test photo's extra crops are "heldout": still the test side of the split
        per_source.setdefault(item["source"], set()).add("test" if item["split"] == "heldout" else item["split"])
    assert all(len(splits) == 1 for splits in per_source.values())
    declared = {**{k: v[1] for k, v in b.SKIMAGE.items()}, **{k: v[1] for k, v in b.SKLEARN.items()},
                **{k: v[1] for k, v in b.MATPLOTLIB.items()},
                **{k.split("_by_")[0].lower(): v[1] for k, v in b.LOMIRI.items()}}
    assert {s: next(iter(v)) for s, v in per_source.items()} == declared
    assert os.path.basename(b.__file__) == "build_embedded.py"
