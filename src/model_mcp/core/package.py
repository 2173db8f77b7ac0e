"""A model package on disk (docs/package-format.md): its files, its JSON, its hashes, its version.

Used the same way on a staging folder during import, on a stored version during validate and deploy,
on a folder placed by hand under models/ and on a training-service package, so that every path
applies exactly the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from model_mcp.core.archive import hash_file
from model_mcp.core.errors import (
    HashMismatchError,
    InvalidManifestError,
    InvalidMetadataError,
    MissingRequiredFilesError,
)
from model_mcp.core.schemas import Manifest, Metadata, parse_manifest, parse_metadata
from model_mcp.core.store import check_new_version_name

REQUIRED_FILES = ("model.joblib", "metadata.json", "deployment_manifest.json")
OPTIONAL_FILES = ("validate_model.py", "inference_example.py", "requirements.txt", "README.md")
KNOWN_FILES = REQUIRED_FILES + OPTIONAL_FILES
MAX_JSON_BYTES = 16 * 1024 * 1024  # metadata and manifest are small; a huge one is hostile


@dataclass
class FileDigest:
    sha256: str
    size: int


@dataclass
class PackageContents:
    """What a package folder holds, with the findings of the strict import checks."""

    root: Path
    files: dict[str, FileDigest]
    metadata: Metadata
    manifest: Manifest
    version: str
    missing_optional: list[str] = field(default_factory=list)
    extra_files: list[str] = field(default_factory=list)
    unlisted_files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def model_path(self) -> Path:
        return self.root / "model.joblib"


def list_package_files(root: Path) -> list[str]:
    """Relative '/'-separated names of the regular files under root (links are not followed)."""
    names: list[str] = []
    for path in sorted(root.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        names.append(path.relative_to(root).as_posix())
    return names


def check_required(names: list[str] | set[str]) -> None:
    missing = [name for name in REQUIRED_FILES if name not in names]
    if missing:
        raise MissingRequiredFilesError(f"The package lacks {', '.join(missing)}.", data={"missing": missing})


def read_json_file(path: Path, error: type[InvalidMetadataError | InvalidManifestError]) -> bytes:
    if path.stat().st_size > MAX_JSON_BYTES:
        raise error(f"{path.name} is larger than {MAX_JSON_BYTES // (1024 * 1024)} MiB.")
    return path.read_bytes()


def resolve_version(metadata: Metadata, manifest: Manifest) -> str:
    """metadata.version, else manifest.model_version, else created_at as YYYYMMDD_HHMMSS (UTC)."""
    if (
        metadata.version is not None
        and manifest.model_version is not None
        and metadata.version != manifest.model_version
    ):
        raise InvalidManifestError(
            f"deployment_manifest.json gives model_version {manifest.model_version!r}, "
            f"but metadata.json gives version {metadata.version!r}; they must be equal."
        )
    if metadata.version is not None:
        return check_new_version_name(metadata.version)
    if manifest.model_version is not None:
        return check_new_version_name(manifest.model_version)
    return metadata.created.strftime("%Y%m%d_%H%M%S")


def check_hashes(manifest: Manifest, files: dict[str, FileDigest]) -> None:
    for name, expected in manifest.files.items():
        actual = files.get(name)
        if actual is None:
            raise HashMismatchError(f"The manifest lists {name}, but the package has no such file.")
        if expected.size is not None and expected.size != actual.size:
            raise HashMismatchError(
                f"{name} is {actual.size} bytes, but the manifest says {expected.size}."
            )
        if expected.sha256 is not None and expected.sha256 != actual.sha256:
            raise HashMismatchError(f"{name} does not match its sha256 in the manifest.")


def inspect_package(root: Path, digests: dict[str, FileDigest] | None = None) -> PackageContents:
    """Run the strict checks in the contract's order (after archive safety): required files,
    metadata and manifest, hashes, version. `digests` are the hashes computed while extracting;
    without them the files are hashed here."""
    names = list_package_files(root)
    check_required(names)
    metadata = parse_metadata(read_json_file(root / "metadata.json", InvalidMetadataError))
    manifest = parse_manifest(read_json_file(root / "deployment_manifest.json", InvalidManifestError))
    if digests is None:
        digests = {name: FileDigest(*hash_file(root / name)) for name in names}
    check_hashes(manifest, digests)
    version = resolve_version(metadata, manifest)

    missing_optional = [name for name in OPTIONAL_FILES if name not in digests]
    extra = [name for name in names if name not in KNOWN_FILES]
    unlisted = [name for name in names if name not in manifest.files and name != "deployment_manifest.json"]
    warnings = [f"The optional file {name} is missing." for name in missing_optional]
    warnings += [f"The package holds {name}, which the format does not define; it is kept." for name in extra]
    if unlisted:
        warnings.append(
            "The manifest lists no hash for " + ", ".join(unlisted) + "; those files were not verified."
        )
    return PackageContents(
        root=root, files=digests, metadata=metadata, manifest=manifest, version=version,
        missing_optional=missing_optional, extra_files=extra, unlisted_files=unlisted, warnings=warnings,
    )


def package_fingerprint(files: dict[str, FileDigest]) -> dict[str, str]:
    """What makes two imports 'the same package': every file's sha256, however it was zipped."""
    return {name: digest.sha256 for name, digest in sorted(files.items())}


def copy_package_folder(source: Path, dest: Path, *, max_files: int, max_total_bytes: int,
                        max_depth: int = 8) -> dict[str, FileDigest]:
    """Copy a folder package (untrusted: a training service's output) into staging, hashing as it goes.

    Only regular files and folders are copied; links, devices and FIFOs are skipped (a FIFO would
    block a naive copy forever), and the file count and total size are bounded like an archive's.
    The digests are of the bytes actually copied, so a file still changing underneath fails the
    manifest's hash check instead of being imported half-written.
    """
    import hashlib
    import os
    import stat as stat_module

    from model_mcp.core.errors import ArchiveTooLargeError

    digests: dict[str, FileDigest] = {}
    total = 0
    pending: list[tuple[Path, Path, int]] = [(source, dest, 0)]
    dest.mkdir(parents=True, exist_ok=True)
    while pending:
        src_dir, dst_dir, depth = pending.pop()
        with os.scandir(src_dir) as entries:
            for entry in entries:
                info = entry.stat(follow_symlinks=False)
                rel = Path(entry.path).relative_to(source).as_posix()
                if stat_module.S_ISDIR(info.st_mode):
                    if depth + 1 > max_depth:
                        continue
                    (dst_dir / entry.name).mkdir()
                    pending.append((Path(entry.path), dst_dir / entry.name, depth + 1))
                    continue
                if not stat_module.S_ISREG(info.st_mode):
                    continue  # links, devices, FIFOs, sockets: never followed or read
                if len(digests) >= max_files:
                    raise ArchiveTooLargeError(f"The package folder holds more than {max_files} files.")
                digest = hashlib.sha256()
                size = 0
                fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
                with os.fdopen(fd, "rb") as reader, open(dst_dir / entry.name, "xb") as writer:
                    while chunk := reader.read(1 << 20):
                        size += len(chunk)
                        total += len(chunk)
                        if total > max_total_bytes:
                            raise ArchiveTooLargeError(
                                f"The package folder holds more than {max_total_bytes} bytes in all."
                            )
                        digest.update(chunk)
                        writer.write(chunk)
                digests[rel] = FileDigest(digest.hexdigest(), size)
    return digests
