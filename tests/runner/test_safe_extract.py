"""Malicious and broken archives are rejected, naming the member, and nothing lands outside the job directory."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from workbench.errors import PackageError
from workbench.runner.inputs.safe_extract import Limits, check_archive, extract_archive

CANARY_TEXT = "do not touch"


@pytest.fixture
def job(tmp_path: Path) -> tuple[Path, Path]:
    """A job directory and a canary file next to it (outside it) that no archive may change."""
    job_dir = tmp_path / "jobs" / "job-1"
    job_dir.mkdir(parents=True)
    canary = tmp_path / "jobs" / "canary.txt"
    canary.write_text(CANARY_TEXT)
    return job_dir, canary


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str) -> tarfile.TarInfo:
    return tarfile.TarInfo(name)


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def _special(name: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    return info


MALICIOUS_TARS = {
    "traversal": ([(_file("pkg/../../canary.txt"), b"pwned")], "pkg/../../canary.txt", "traversal"),
    "absolute": ([(_file("/tmp/evil.txt"), b"pwned")], "/tmp/evil.txt", "absolute"),
    "symlink escape": (
        [(_link("pkg/escape", "../../canary.txt"), None), (_file("pkg/escape"), b"pwned")],
        "pkg/escape",
        "outside",
    ),
    "symlink absolute": ([(_link("pkg/etc", "/etc"), None)], "pkg/etc", "absolute"),
    "hard link escape": ([(_link("pkg/hard", "../canary.txt", tarfile.LNKTYPE), None)], "pkg/hard", "outside"),
    "device": ([(_special("pkg/dev", tarfile.CHRTYPE), None)], "pkg/dev", "device"),
    "fifo": ([(_special("pkg/fifo", tarfile.FIFOTYPE), None)], "pkg/fifo", "fifo"),
}


@pytest.mark.parametrize("case", sorted(MALICIOUS_TARS))
def test_malicious_tar_is_rejected_naming_the_member(case: str, job: tuple[Path, Path], tmp_path: Path) -> None:
    job_dir, canary = job
    members, offender, reason = MALICIOUS_TARS[case]
    archive = _tar(tmp_path / "archive.tar.gz", [(_file("pkg/ok.py"), b"x = 1\n"), *members])
    with pytest.raises(PackageError, match=reason) as err:
        extract_archive(archive, job_dir / "src")
    assert repr(offender) in str(err.value)
    with pytest.raises(PackageError):
        check_archive(archive)
    assert canary.read_text() == CANARY_TEXT
    assert not (job_dir / "src").exists()
    assert sorted(p.name for p in canary.parent.iterdir()) == ["canary.txt", "job-1"]


def test_symlink_chain_escape_is_rejected(job: tuple[Path, Path], tmp_path: Path) -> None:
    """A link that stays inside by itself but escapes through an earlier link is caught on disk."""
    job_dir, canary = job
    archive = _tar(
        tmp_path / "archive.tar.gz",
        [(_link("a", "."), None), (_link("a/b", "."), None), (_link("a/b/c", ".."), None), (_file("a/b/c/canary.txt"), b"pwned")],
    )
    with pytest.raises(PackageError, match="unsafe member"):
        extract_archive(archive, job_dir / "src")
    assert canary.read_text() == CANARY_TEXT


def test_safe_tar_with_inner_links_unpacks(job: tuple[Path, Path], tmp_path: Path) -> None:
    job_dir, canary = job
    archive = _tar(
        tmp_path / "archive.tgz",
        [
            (_file("pkg/mod.py"), b"x = 1\n"),
            (_link("pkg/alias.py", "mod.py"), None),
            (_link("pkg/hard.py", "pkg/mod.py", tarfile.LNKTYPE), None),
        ],
    )
    dest = extract_archive(archive, job_dir / "src")
    assert (dest / "pkg" / "alias.py").read_text() == "x = 1\n"
    assert (dest / "pkg" / "hard.py").read_text() == "x = 1\n"
    assert (dest / "pkg" / "alias.py").is_symlink()
    assert canary.read_text() == CANARY_TEXT


def test_too_many_members(job: tuple[Path, Path], tmp_path: Path) -> None:
    job_dir, canary = job
    archive = _tar(tmp_path / "archive.tar.gz", [(_file(f"pkg/f{i}.txt"), b"") for i in range(30)])
    with pytest.raises(PackageError, match="more than 20 members"):
        extract_archive(archive, job_dir / "src", Limits(max_members=20))
    assert not (job_dir / "src").exists()


def test_gzip_bomb_stops_at_the_size_limit(job: tuple[Path, Path], tmp_path: Path) -> None:
    """64 MiB of zeros compress to ~64 KiB; a 1 MiB limit stops it without unpacking it all."""
    job_dir, canary = job
    archive = _tar(tmp_path / "archive.tar.gz", [(_file("pkg/zeros.bin"), bytes(64 << 20))])
    assert archive.stat().st_size < 1 << 20
    with pytest.raises(PackageError, match=r"more than 1048576 bytes.*zeros\.bin"):
        extract_archive(archive, job_dir / "src", Limits(max_bytes=1 << 20))
    assert not (job_dir / "src").exists()


def _zip(path: Path, members: list[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for info, data in members:
            zf.writestr(info, data)
    return path


def _zip_link(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (0o120777 << 16)
    return info, target.encode()


def _zip_special(name: str) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (0o010644 << 16)  # fifo
    return info, b""


MALICIOUS_ZIPS = {
    "traversal": ([("../../canary.txt", b"pwned")], "../../canary.txt", "traversal"),
    "absolute": ([("/tmp/evil.txt", b"pwned")], "/tmp/evil.txt", "absolute"),
    "windows absolute": ([("C:\\evil.txt", b"pwned")], "C:\\evil.txt", "absolute"),
    "symlink escape": ([_zip_link("pkg/escape", "../../canary.txt")], "pkg/escape", "outside"),
    "special file": ([_zip_special("pkg/fifo")], "pkg/fifo", "special"),
}


@pytest.mark.parametrize("case", sorted(MALICIOUS_ZIPS))
def test_malicious_zip_is_rejected_naming_the_member(case: str, job: tuple[Path, Path], tmp_path: Path) -> None:
    job_dir, canary = job
    members, offender, reason = MALICIOUS_ZIPS[case]
    archive = _zip(tmp_path / "archive.zip", [("pkg/ok.py", b"x = 1\n"), *members])
    with pytest.raises(PackageError, match=reason) as err:
        extract_archive(archive, job_dir / "src")
    assert repr(offender) in str(err.value)
    assert canary.read_text() == CANARY_TEXT
    assert not (job_dir / "src").exists()


def test_zip_bomb_is_rejected_by_declared_size(job: tuple[Path, Path], tmp_path: Path) -> None:
    job_dir, canary = job
    archive = _zip(tmp_path / "archive.zip", [("pkg/zeros.bin", bytes(8 << 20))])
    with pytest.raises(PackageError, match="zeros.bin"):
        extract_archive(archive, job_dir / "src", Limits(max_bytes=1 << 20))


def test_zip_that_lies_about_its_size_is_stopped(job: tuple[Path, Path], tmp_path: Path) -> None:
    """A member whose headers declare 10 bytes but that inflates to 8 MiB never gets past the declared size."""
    job_dir, canary = job
    archive = _zip(tmp_path / "archive.zip", [("pkg/zeros.bin", bytes(8 << 20))])
    data = bytearray(archive.read_bytes())
    size = (8 << 20).to_bytes(4, "little")
    assert data.count(size) == 2  # local header and central directory
    archive.write_bytes(bytes(data).replace(size, (10).to_bytes(4, "little")))
    with pytest.raises(PackageError, match="zeros.bin|corrupt"):
        extract_archive(archive, job_dir / "src")
    assert not (job_dir / "src").exists()


def test_safe_zip_unpacks(job: tuple[Path, Path], tmp_path: Path) -> None:
    job_dir, canary = job
    archive = _zip(tmp_path / "archive.zip", [("pkg/", b""), ("pkg/mod.py", b"x = 1\n"), _zip_link("pkg/alias.py", "mod.py")])
    dest = extract_archive(archive, job_dir / "src")
    assert (dest / "pkg" / "mod.py").read_text() == "x = 1\n"
    assert (dest / "pkg" / "alias.py").resolve() == (dest / "pkg" / "mod.py").resolve()


@pytest.mark.parametrize("name,content", [("broken.tar.gz", b"\x1f\x8b\x08\x00garbage"), ("broken.zip", b"PK\x03\x04garbage")])
def test_corrupt_archives(name: str, content: bytes, job: tuple[Path, Path], tmp_path: Path) -> None:
    job_dir, _ = job
    archive = tmp_path / name
    archive.write_bytes(content)
    with pytest.raises(PackageError, match="corrupt archive"):
        extract_archive(archive, job_dir / "src")


def test_unsupported_format(job: tuple[Path, Path], tmp_path: Path) -> None:
    job_dir, _ = job
    archive = tmp_path / "package.rar"
    archive.write_bytes(b"Rar!")
    with pytest.raises(PackageError, match="unsupported package format"):
        extract_archive(archive, job_dir / "src")


def test_root_directory_members_are_allowed(job: tuple[Path, Path], tmp_path: Path) -> None:
    """Archives made with ``tar -C dir .`` (or shutil.make_archive) list the root as ``.`` or ``./``."""
    job_dir, _ = job
    root = tarfile.TarInfo(".")
    root.type = tarfile.DIRTYPE
    archive = _tar(tmp_path / "archive.tar.gz", [(root, None), (_file("./pkg/mod.py"), b"x = 1\n")])
    assert (extract_archive(archive, job_dir / "src") / "pkg" / "mod.py").read_text() == "x = 1\n"
    empty = _tar(tmp_path / "empty.tar.gz", [(_file("."), b"pwned")])
    with pytest.raises(PackageError, match="empty path"):
        extract_archive(empty, job_dir / "src2")
