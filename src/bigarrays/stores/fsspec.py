"""fsspec store: any file system fsspec knows (Azure, SFTP, HDFS, ...) behind the store contract.

URLs: ``fsspec+PROTO://...`` for any fsspec protocol (``fsspec+sftp://host/data/vol``,
``fsspec+abfs://container/vol``, ``fsspec+simplecache::s3://bucket/vol``), and a plain
``PROTO://...`` whose scheme bigarrays has no store of its own for but fsspec knows. Storage
options (credentials, endpoints, ...) are the keyword arguments of ``open_store`` / ``ba.open``
and go to ``fsspec.url_to_fs``. fsspec is the extra ``fsspec``; a protocol's own package (adlfs,
sshfs, ...) is installed separately, and the error says which when it is missing.

- Values are written atomically: in one request on object stores (and fsspec's memory file
  system); elsewhere to a temporary name that is renamed into place, as the file store does.
- Byte ranges go to ``fs.cat_file(path, start, end)``; the merged spans of ``get_ranges`` go
  to one ``fs.cat_ranges``, fetched concurrently on asynchronous file systems.
- Transfer encodings are kept in the name (``KEY.gz``), as on a local disk: fsspec has no portable
  way to set a ``Content-Encoding`` header. For S3 and GCS, whose readers (Neuroglancer over HTTP)
  want the header, use bigarrays' own ``s3://`` and ``gs://`` stores.
- A put removes only the encoded twins that would hide the new value (``KEY`` when ``KEY.gz`` is
  written), not the ones it hides itself, which saves requests on remote file systems; a stale
  twin is never read and goes with ``delete``.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from bigarrays.errors import AccessDeniedError, MissingDependencyError, StoreError
from bigarrays.stores import content_encoding
from bigarrays.stores.base import ANY_ENCODING, Buffer, Run, Store, local_disk_concurrency
from bigarrays.stores.ranges import LOCAL, REMOTE, Span

_PREFIX = "fsspec+"
_TMP_MARK = ".bigarrays-tmp-"
#: Protocols whose writes land whole in one request: a reader never sees half a value there.
_ATOMIC_WRITES = frozenset(
    {"memory", "s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss", "r2"}
)
_LOCAL = frozenset({"file", "local"})
_MISSING = (FileNotFoundError, IsADirectoryError, NotADirectoryError)


class FsspecDependencyError(MissingDependencyError):
    """fsspec is there, but the package of the protocol asked for is not."""

    def __init__(self, protocol: str, package: str, detail: str) -> None:
        self.package = package
        self.extra = "fsspec"
        ImportError.__init__(
            self,
            f"{protocol}:// URLs go through fsspec, which needs the package {package!r} for "
            f"them: pip install {package} ({detail})",
        )


def _fsspec() -> Any:
    try:
        import fsspec
    except ImportError:
        raise MissingDependencyError("fsspec", "fsspec", "fsspec+PROTO:// URLs") from None
    return fsspec


def fsspec_knows(scheme: str) -> bool:
    """True when fsspec is installed and has a file system for ``scheme``."""
    try:
        import fsspec  # noqa: F401 - the package itself, not only its loaded submodule
        from fsspec.registry import known_implementations, registry
    except ImportError:
        return False
    return scheme in known_implementations or scheme in registry


def _missing_package(exc: ImportError, protocol: str) -> str:
    """The package whose import failed under fsspec's ``exc``: the module that fsspec's own
    implementation (sftp: paramiko) could not import, else the implementation's (adlfs)."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ImportError) and cause.name:
            return cause.name.split(".")[0]
        cause = cause.__cause__ or cause.__context__
    from fsspec.registry import known_implementations

    impl = known_implementations.get(protocol, {})
    return str(impl.get("class", protocol)).split(".")[0]


def _freeze(options: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, repr(v)) for k, v in options.items()))


class FsspecStore(Store):
    """Keys under a root path of an fsspec file system."""

    schemes = ("fsspec+*",)

    def __init__(self, url: str, *, read_only: bool = False, **storage_options: Any) -> None:
        super().__init__(read_only=read_only)
        fsspec = _fsspec()
        url = os.fspath(url)
        head, sep, tail = url.partition("://")
        self._url = head + sep + tail.rstrip("/") if sep else url.rstrip("/")
        inner = self._url[len(_PREFIX) :] if self._url[:7].lower() == _PREFIX else self._url
        protocol = inner.partition("://")[0].rpartition("::")[2] if "://" in inner else "file"
        try:
            fs, root = fsspec.core.url_to_fs(inner, **storage_options)
        except ImportError as exc:
            raise FsspecDependencyError(
                protocol, _missing_package(exc, protocol), str(exc)
            ) from None
        except ValueError as exc:
            raise StoreError(f"fsspec cannot open {inner!r}: {exc}") from None
        self.fs = fs
        self.root = root.rstrip("/")
        self.storage_options = dict(storage_options)
        protocols = fs.protocol if isinstance(fs.protocol, tuple | list) else (fs.protocol,)
        self._protocols = frozenset(protocols)
        self._atomic = bool(self._protocols & _ATOMIC_WRITES)
        self.range_policy = LOCAL if self._protocols & (_LOCAL | {"memory"}) else REMOTE
        self._made: set[str] = set()

    @property
    def url(self) -> str:
        return self._url

    @property
    def default_concurrency(self) -> int:
        if self._protocols & _LOCAL:
            return local_disk_concurrency()
        if "memory" in self._protocols:
            return 4
        return 16  # a network file system: requests in flight hide the latency

    def _config(self) -> tuple[Any, ...]:
        return (*super()._config(), _freeze(self.storage_options))

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self._url, "read_only": self.read_only, "options": self.storage_options,
                "allow_parent_keys": self.allow_parent_keys}  # fmt: skip

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["url"], read_only=state["read_only"], **state["options"])  # type: ignore[misc]
        self.allow_parent_keys = state.get("allow_parent_keys", False)

    # -- paths -----------------------------------------------------------------------------------
    def _path(self, key: str) -> str:
        return posixpath.normpath(f"{self.root}/{key}") if self.root else key

    def _variants(self, key: str) -> list[tuple[str, str | None]]:
        return content_encoding.stored_names(self._path(key))

    def _error(self, what: str, path: str, exc: OSError) -> StoreError:
        if isinstance(exc, PermissionError):
            return AccessDeniedError(f"cannot {what} {path} ({self.url}): permission denied")
        return StoreError(f"cannot {what} {path} ({self.url}): {exc}")

    def _cat(self, path: str, start: int | None = None, end: int | None = None) -> bytes | None:
        try:
            data = self.fs.cat_file(path, start=start, end=end)
        except _MISSING:
            return None
        except OSError as exc:
            raise self._error("read", path, exc) from exc
        return bytes(data)

    # -- the contract ----------------------------------------------------------------------------
    def _get_encoded(self, key: str) -> tuple[bytes, str | None] | None:
        return self._get_encoded_as(key, ANY_ENCODING)

    names_encodings = True

    def _get_encoded_as(self, key: str, encoding: str | None) -> tuple[bytes, str | None] | None:
        for path, stored in content_encoding.stored_names(self._path(key), encoding):
            data = self._cat(path)
            if data is not None:
                return data, stored
        return None

    def _get(self, key: str) -> bytes | None:
        return content_encoding.decode_stored(self._get_encoded(key), key)

    def _get_range(self, key: str, start: int, length: int | None) -> bytes | None:
        end = None if length is None or start < 0 else start + length
        data = self._cat(self._path(key), start, end)
        if data is not None:
            return data
        # An encoded value cannot be read by ranges: decode the whole value and cut it.
        return super()._get_range(key, start, length)

    def _get_spans(
        self, key: str, spans: Sequence[Span], checked: bool, version: str | None,
        run: Run | None,
    ) -> list[bytes | None]:  # fmt: skip
        """Every span in one ``fs.cat_ranges`` call, which asynchronous file systems (HTTP,
        s3fs, gcsfs, adlfs) fetch concurrently."""
        if checked or len(spans) == 1:
            return super()._get_spans(key, spans, checked, version, run)
        path = self._path(key)
        try:
            results = self.fs.cat_ranges(
                [path] * len(spans), [s.start for s in spans], [s.end for s in spans],
                on_error="return",
            )  # fmt: skip
        except OSError as exc:
            raise self._error("read", path, exc) from exc
        out: list[bytes | None] = []
        for result in results:
            if isinstance(result, _MISSING):
                break
            if isinstance(result, OSError):
                raise self._error("read", path, result) from result
            if isinstance(result, BaseException):
                raise result
            out.append(bytes(result))
        else:
            return out
        # No plain value: an encoded one is decoded whole and cut; otherwise the key is missing.
        value = self._get(key)
        return [None if value is None else value[s.start : s.end] for s in spans]

    def _put(self, key: str, value: Buffer, encoding: str | None) -> None:
        """No versions on fsspec's file systems: the new version is None."""
        content_encoding.check(encoding)
        blob = bytes(memoryview(value).cast("B"))  # a copy, taken now; str is refused here
        variants = self._variants(key)
        target = next(i for i, (_, e) in enumerate(variants) if e == encoding)
        path = variants[target][0]
        try:
            self._write(path, blob)
        except OSError as exc:
            raise self._error("write", path, exc) from exc
        # Remove the twins that get() looks at first and that would hide the new value.
        self._remove([p for p, _ in variants[:target]])

    def _write(self, path: str, blob: bytes) -> None:
        if self._atomic:
            self.fs.pipe_file(path, blob)
            return
        tmp = f"{path}{_TMP_MARK}{uuid.uuid4().hex}"
        parent = posixpath.dirname(path)
        for attempt in range(2):
            if parent and (attempt or parent not in self._made):
                self.fs.makedirs(parent, exist_ok=True)
                self._made.add(parent)
            try:
                self.fs.pipe_file(tmp, blob)
                break
            except FileNotFoundError:
                if attempt:
                    raise
                # The folder was removed behind our back since we made it: make it again.
        try:
            self.fs.mv(tmp, path)
        except BaseException:
            with contextlib.suppress(Exception):
                self.fs.rm_file(tmp)
            raise

    def _remove(self, paths: Sequence[str]) -> None:
        for path in paths:
            try:
                self.fs.rm_file(path)
            except _MISSING:
                pass
            except OSError as exc:
                raise self._error("remove", path, exc) from exc

    def _delete(self, key: str) -> None:
        self._remove([p for p, _ in self._variants(key)])

    def _isfile(self, path: str) -> bool:
        try:
            return bool(self.fs.isfile(path))
        except OSError as exc:
            raise self._error("look at", path, exc) from exc

    def _exists(self, key: str) -> bool:
        return any(self._isfile(p) for p, _ in self._variants(key))

    def _size(self, key: str) -> int | None:
        for path, _ in self._variants(key):
            try:
                info = self.fs.info(path)
            except _MISSING:
                continue
            except OSError as exc:
                raise self._error("look at", path, exc) from exc
            if info.get("type") == "file":
                return int(info["size"])
        return None

    def _list(self, prefix: str) -> Iterator[str]:
        folder = prefix.rpartition("/")[0]
        base = self._path(folder) if folder else self.root
        try:
            found = self.fs.find(base, withdirs=False) if base or not self.root else []
        except _MISSING:
            return
        except OSError as exc:
            raise self._error("list", base, exc) from exc
        root = self.fs._strip_protocol(self.root).rstrip("/") if self.root else ""
        cut = len(root) + 1 if root else 0

        def stored() -> Iterator[str]:
            for path in sorted(found):
                path = path.lstrip("/") if not root else path
                if root and not path.startswith(root + "/"):
                    continue
                name = path[cut:]
                if _TMP_MARK not in name.rpartition("/")[2]:
                    yield name

        yield from content_encoding.keys_of(stored(), prefix)
