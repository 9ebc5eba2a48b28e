"""Safe unpacking of untrusted .tar.gz/.tgz/.zip archives (and checking of .whl files) into a job directory.

Every member is checked before anything is written: no absolute path, no ``..`` component, no device, fifo or
other special file, no symlink or hard link whose target resolves outside the destination, no more than
``Limits.max_members`` members and no more than ``Limits.max_bytes`` unpacked bytes. Sizes are counted as the
bytes really come out of the decompressor (a zip or gzip bomb that lies in its headers is stopped too), and each
write is checked again against the resolved destination, after earlier members (links) are on disk. Tar members
are then written by :mod:`tarfile` with its ``data`` filter as a second line of defence.

Any problem raises :class:`~workbench.errors.PackageError` naming the archive and the offending member.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import stat
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from workbench.errors import PackageError

FORMATS = {".tar.gz": "tar", ".tgz": "tar", ".zip": "zip", ".whl": "zip"}
"""Supported package suffixes and the archive kind each is."""

_CHUNK = 1 << 16


@dataclass(frozen=True)
class Limits:
    """How big an archive may be once unpacked."""

    max_bytes: int = 1 << 30
    max_members: int = 20_000


def archive_kind(path: Path) -> str:
    """``tar`` or ``zip`` from the file name; unsupported suffixes raise :class:`PackageError`."""
    name = path.name.lower()
    for suffix, kind in FORMATS.items():
        if name.endswith(suffix):
            return kind
    raise PackageError(f"unsupported package format {path.name!r}; use one of {', '.join(FORMATS)}")


def extract_archive(archive: Path, dest: Path, limits: Limits = Limits()) -> Path:
    """Unpack ``archive`` into the new or empty directory ``dest`` and return ``dest``.

    On any failure ``dest`` is removed again and :class:`PackageError` is raised; nothing outside ``dest`` is
    ever written.
    """
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise PackageError(f"cannot unpack {archive.name} into {dest}: the directory is not empty")
    try:
        if archive_kind(archive) == "tar":
            _TarReader(archive, limits).run(dest.resolve())
        else:
            _ZipReader(archive, limits).run(dest.resolve())
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    return dest


def check_archive(archive: Path, limits: Limits = Limits()) -> None:
    """Check every member of ``archive`` as :func:`extract_archive` would, without writing anything."""
    if archive_kind(archive) == "tar":
        _TarReader(archive, limits).run(None)
    else:
        _ZipReader(archive, limits).run(None)


def _member_path(archive: Path, name: str) -> PurePosixPath:
    """The member's relative path, or :class:`PackageError` for absolute paths and ``..`` traversal."""
    if not name or "\x00" in name:
        raise PackageError(f"unsafe member {name!r} in {archive.name}: empty or invalid name")
    normalized = name.replace("\\", "/")
    path = PurePosixPath(normalized)
    if path.is_absolute() or (len(normalized) > 1 and normalized[1] == ":"):
        raise PackageError(f"unsafe member {name!r} in {archive.name}: absolute path")
    if ".." in path.parts:
        raise PackageError(f"unsafe member {name!r} in {archive.name}: path traversal ('..')")
    return path


def _inside(dest: Path, target: Path) -> bool:
    """Whether ``target``, with every symlink already on disk resolved, lies within ``dest``."""
    resolved = Path(os.path.realpath(target))
    return resolved == dest or dest in resolved.parents


def _check_write(archive: Path, name: str, dest: Path, relative: PurePosixPath) -> Path:
    target = dest / relative
    if not _inside(dest, target.parent) or (target.is_symlink() and not _inside(dest, target)):
        raise PackageError(f"unsafe member {name!r} in {archive.name}: it would be written outside the package directory")
    return target


def _check_link(archive: Path, name: str, dest: Path | None, link_target: str, hard: bool, relative: PurePosixPath) -> None:
    kind = "hard link" if hard else "symlink"
    if not link_target or PurePosixPath(link_target).is_absolute():
        raise PackageError(f"unsafe member {name!r} in {archive.name}: {kind} to absolute path {link_target!r}")
    base = PurePosixPath() if hard else relative.parent
    target = os.path.normpath(base / link_target)
    if target == ".." or target.startswith("../"):
        raise PackageError(f"unsafe member {name!r} in {archive.name}: {kind} to {link_target!r} points outside the package")
    if dest is not None and not _inside(dest, dest / base / link_target):
        raise PackageError(f"unsafe member {name!r} in {archive.name}: {kind} to {link_target!r} points outside the package")


class _Budget:
    """Counts members and unpacked bytes against the limits."""

    def __init__(self, archive: Path, limits: Limits) -> None:
        self.archive, self.limits = archive, limits
        self.members = 0
        self.bytes = 0

    def member(self, name: str) -> None:
        self.members += 1
        if self.members > self.limits.max_members:
            raise PackageError(
                f"{self.archive.name} has more than {self.limits.max_members} members (stopped at {name!r})"
            )

    def add(self, name: str, size: int) -> None:
        self.bytes += size
        if self.bytes > self.limits.max_bytes:
            raise PackageError(
                f"{self.archive.name} unpacks to more than {self.limits.max_bytes} bytes (stopped at member {name!r})"
            )


class _BoundedStream(io.RawIOBase):
    """A read-only view of a decompressed stream that fails once more than ``limit`` bytes are read."""

    def __init__(self, raw: io.BufferedIOBase, archive: Path, limit: int) -> None:
        self.raw, self.archive, self.limit = raw, archive, limit
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:
        if self.count + len(buffer) > self.limit:
            buffer = memoryview(buffer)[: max(0, self.limit - self.count) + 1]
        data = self.raw.read(len(buffer))
        self.count += len(data)
        if self.count > self.limit:
            raise PackageError(f"{self.archive.name} unpacks to more than {self.limit} bytes")
        buffer[: len(data)] = data
        return len(data)


class _TarReader:
    def __init__(self, archive: Path, limits: Limits) -> None:
        self.archive, self.limits = archive, limits

    def run(self, dest: Path | None) -> None:
        budget = _Budget(self.archive, self.limits)
        # headers and padding count too: allow one 1 KiB block per member on top of the data limit
        stream_limit = self.limits.max_bytes + 1024 * (self.limits.max_members + 2)
        try:
            with gzip.open(self.archive, "rb") as raw:
                stream = io.BufferedReader(_BoundedStream(raw, self.archive, stream_limit), _CHUNK)
                with tarfile.open(fileobj=stream, mode="r|") as tar:
                    for member in tar:
                        self._member(tar, member, dest, budget)
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise PackageError(f"corrupt archive {self.archive.name}: {exc}") from None

    def _member(self, tar: tarfile.TarFile, member: tarfile.TarInfo, dest: Path | None, budget: _Budget) -> None:
        name = member.name
        budget.member(name)
        relative = _member_path(self.archive, name)
        if not relative.parts and member.isdir():
            return  # "." or "./": the destination itself
        if not relative.parts:
            raise PackageError(f"unsafe member {name!r} in {self.archive.name}: empty path")
        if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
            raise PackageError(f"unsafe member {name!r} in {self.archive.name}: device, fifo or special file")
        if member.issym() or member.islnk():
            _check_link(self.archive, name, dest, member.linkname, member.islnk(), relative)
        budget.add(name, member.size)
        if dest is None:
            return
        _check_write(self.archive, name, dest, relative)
        try:
            tar.extract(member, dest, set_attrs=not member.issym(), filter="data")
        except tarfile.FilterError as exc:
            raise PackageError(f"unsafe member {name!r} in {self.archive.name}: {exc}") from None


class _ZipReader:
    def __init__(self, archive: Path, limits: Limits) -> None:
        self.archive, self.limits = archive, limits

    def run(self, dest: Path | None) -> None:
        budget = _Budget(self.archive, self.limits)
        try:
            with zipfile.ZipFile(self.archive) as zf:
                infos = zf.infolist()
                if len(infos) > self.limits.max_members:
                    raise PackageError(f"{self.archive.name} has {len(infos)} members; the limit is {self.limits.max_members}")
                for info in infos:
                    budget.member(info.filename)
                    _member_path(self.archive, info.filename)
                    budget.add(info.filename, info.file_size)
                written = _Budget(self.archive, self.limits)
                for info in infos:
                    self._member(zf, info, dest, written)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, zlib.error, NotImplementedError, RuntimeError) as exc:
            raise PackageError(f"corrupt archive {self.archive.name}: {exc}") from None

    def _member(self, zf: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path | None, written: _Budget) -> None:
        name = info.filename
        relative = _member_path(self.archive, name)
        if not relative.parts and info.is_dir():
            return  # "./": the destination itself
        if not relative.parts:
            raise PackageError(f"unsafe member {name!r} in {self.archive.name}: empty path")
        mode = info.external_attr >> 16
        kind = stat.S_IFMT(mode)
        if kind and kind not in (stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK):
            raise PackageError(f"unsafe member {name!r} in {self.archive.name}: device, fifo or special file")
        if kind == stat.S_IFLNK:
            if info.file_size > 4096:
                raise PackageError(f"unsafe member {name!r} in {self.archive.name}: symlink target too long")
            link_target = zf.read(info).decode("utf-8", "replace")
            _check_link(self.archive, name, dest, link_target, False, relative)
            if dest is not None:
                target = _check_write(self.archive, name, dest, relative)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(link_target, target)
            return
        if info.is_dir():
            if dest is not None:
                _check_write(self.archive, name, dest, relative).mkdir(parents=True, exist_ok=True)
            return
        target = _check_write(self.archive, name, dest, relative) if dest is not None else None
        if target is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_symlink():
                target.unlink()
        with zf.open(info) as source:
            out = open(target, "xb") if target is not None else None
            try:
                size = 0
                while chunk := source.read(_CHUNK):
                    size += len(chunk)
                    written.add(name, len(chunk))
                    if size > info.file_size:
                        raise PackageError(
                            f"unsafe member {name!r} in {self.archive.name}: unpacks to more than its declared "
                            f"{info.file_size} bytes"
                        )
                    if out is not None:
                        out.write(chunk)
            finally:
                if out is not None:
                    out.close()
