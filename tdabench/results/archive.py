"""Result sets as archives: published apart from the code, merged from several machines.

``tdabench leaderboard --export FILE.tar.xz`` packs a results directory (every record and its
predictions) into one archive with a manifest (``tdabench-results.json``: the bank version,
each benchmark's data hash, every file's sha256) and writes ``FILE.tar.xz.sha256`` beside it.
One archive holds one version of each benchmark's data: a directory whose results disagree on a
benchmark's data hash is refused, so an archive always stands for one bank version.
``--results`` accepts archives and directories alike (:func:`open_results`); an archive is
checked against its checksum file and its manifest before anything in it is read.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tdabench.errors import DataError, TDABenchError
from tdabench.formats.jsonl import atomic_write_bytes, atomic_write_text
from tdabench.results.provenance import package_version

MANIFEST = "tdabench-results.json"
SCHEMA = "tdabench.results-archive/1"
SUFFIXES = (".tar.xz", ".tar.gz", ".tgz", ".tar")


@dataclass(frozen=True)
class Exported:
    """What an export wrote: the archive, its sha256, the bank version and how many files."""

    path: Path
    sha256: str
    bank_version: str
    n_files: int


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _data_hashes(root: Path) -> dict[str, str]:
    """benchmark id -> data hash of every record under ``root``; two hashes for one benchmark are refused."""
    seen: dict[str, tuple[str, Path]] = {}
    for p in sorted(root.rglob("*.json")):
        try:
            obj = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError):
            continue
        if not isinstance(obj, dict) or not isinstance(obj.get("benchmark"), str) or not isinstance(obj.get("data_hash"), str):
            continue
        bench, h = obj["benchmark"], obj["data_hash"]
        if bench in seen and seen[bench][0] != h:
            raise TDABenchError(f"{root} holds results of two versions of {bench} (data {seen[bench][0][:19]}... in {seen[bench][1]}, "
                                f"{h[:19]}... in {p}): export each version from its own directory")
        seen.setdefault(bench, (h, p))
    return {b: h for b, (h, _) in sorted(seen.items())}


def bank_version(hashes: dict[str, str]) -> str:
    """A short id of a set of benchmark versions: sha256 over the sorted (benchmark, data hash) pairs."""
    return _sha256(json.dumps(sorted(hashes.items())).encode())[:16]


def export(results: Path, dest: Path) -> Exported:
    """Pack every file of the results directory ``results`` into the archive ``dest`` (written
    atomically), with a manifest and a ``.sha256`` file beside it."""
    results = Path(results)
    if not results.is_dir():
        raise TDABenchError(f"results directory not found: {results}")
    if not str(dest).endswith(SUFFIXES):
        raise TDABenchError(f"--export {dest}: name the archive *.tar.xz (or .tar.gz, .tar)")
    hashes = _data_hashes(results)
    files = sorted(p for p in results.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.relative_to(results).parts))
    if not files:
        raise TDABenchError(f"no result files under {results} to export")
    listing = {p.relative_to(results).as_posix(): _sha256(p.read_bytes()) for p in files}
    manifest = {"schema": SCHEMA, "tdabench": package_version("tdabench"), "bank_version": bank_version(hashes),
                "benchmarks": hashes, "files": listing}
    mode = "w:xz" if str(dest).endswith(".xz") else "w:gz" if str(dest).endswith(("gz", ".tgz")) else "w"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:  # type: ignore[call-overload]
        blob = (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mtime = len(blob), 0
        tar.addfile(info, io.BytesIO(blob))
        for p in files:
            info = tarfile.TarInfo(p.relative_to(results).as_posix())
            data = p.read_bytes()
            info.size, info.mtime = len(data), 0
            tar.addfile(info, io.BytesIO(data))
    data = buf.getvalue()
    atomic_write_bytes(Path(dest), data)
    digest = _sha256(data)
    atomic_write_text(Path(f"{dest}.sha256"), f"{digest}  {Path(dest).name}\n")
    return Exported(Path(dest), digest, str(manifest["bank_version"]), len(files))


def is_archive(path: Path) -> bool:
    """Whether ``path`` names a results archive (by its name)."""
    return Path(path).is_file() and str(path).endswith(SUFFIXES)


@contextmanager
def open_results(source: Path) -> Iterator[Path]:
    """A directory holding the results of ``source``: the directory itself, or an archive checked
    (its ``.sha256`` file when present, then every file against the manifest) and extracted into a
    temporary directory that is removed afterwards."""
    source = Path(source)
    if source.is_dir():
        yield source
        return
    if not is_archive(source):
        raise TDABenchError(f"--results {source}: not a results directory or archive (*.tar.xz, *.tar.gz, *.tar)")
    data = source.read_bytes()
    check = Path(f"{source}.sha256")
    if check.is_file():
        want = check.read_text(encoding="utf-8").split()[0] if check.read_text(encoding="utf-8").split() else ""
        if want != _sha256(data):
            raise DataError(source, f"sha256 differs from {check.name}: the archive is damaged or not the one published")
    with tempfile.TemporaryDirectory(prefix="tdabench-results-") as tmp:
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise DataError(source, f"not a readable archive ({exc})") from None
        root = Path(tmp)
        try:
            manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise DataError(source, f"no {MANIFEST} in the archive: not made by `tdabench leaderboard --export`") from None
        if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
            raise DataError(source, f"{MANIFEST} has schema {manifest.get('schema') if isinstance(manifest, dict) else None!r}, expected {SCHEMA!r}")
        for rel, digest in dict(manifest.get("files", {})).items():
            path = root / rel
            if not path.is_file() or _sha256(path.read_bytes()) != digest:
                raise DataError(source, f"{rel} does not match the archive's manifest: the archive is damaged")
        os.remove(root / MANIFEST)
        yield root
