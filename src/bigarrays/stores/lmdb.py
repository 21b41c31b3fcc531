"""LMDB store: a whole dataset in one memory-mapped, transactional file (``lmdb:///data/vol.lmdb``).

The URL names the data file; LMDB keeps its lock table beside it (``vol.lmdb-lock``). A path that
is an existing folder is opened as LMDB's folder layout (``data.mdb`` and ``lock.mdb`` inside),
the layout other tools make by default. The package is the extra ``lmdb``.

- Every put and delete is a transaction: a reader, in this process or another, sees the old value
  or the new one, and a crash never leaves a half-written value or a damaged file.
- Any number of reader processes and one writer process at a time: LMDB's lock file serializes
  writers (a second writing process waits for the first's transaction, it does not fail), and
  readers never wait. Readers see each commit at once.
- A value is stored from one buffer (py-lmdb cannot reserve the space and fill it in place), so a
  value given in pieces (``put_parts``, a shard) is joined once, into bytes the store owns until
  the commit, and not copied again.
- Writes from many threads are committed together (group commit): a thread that finds a commit in
  progress queues its put, and the next commit takes every queued put in one transaction, so the
  disk flush is paid once per batch rather than once per chunk. Commits flush the data but not the
  meta page (``metasync=False``): a power loss may undo the last commits, never more, and never
  damages the file; a process crash loses nothing that was committed.
- The memory map starts at 1 GiB and doubles when a write fills it; a process that finds the map
  grown by another adopts the new size. On 64-bit systems the map is address space, not memory.
- Transfer encodings are kept in the key, as on disk (``KEY.gz``): values stay exactly the bytes
  that were put (other tools read them as they are), and a copy keeps gzip as gzip.
- Keys are at most 511 bytes (LMDB's limit); chunk keys are far shorter.
- Readers copy a value out of the map while holding the GIL; a volume bigger than memory is read
  from disk through page faults, which do not overlap between threads as well as file reads do.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from isal import isal_zlib

from bigarrays.codecs import crc32c
from bigarrays.errors import (
    AccessDeniedError,
    MissingDependencyError,
    StoreError,
    UnsupportedError,
    VersionConflictError,
)
from bigarrays.stores import content_encoding
from bigarrays.stores.base import ANY_ENCODING, Buffer, Store, local_disk_concurrency
from bigarrays.stores.ranges import cut_range
from bigarrays.stores.versions import ANY_VERSION, PutMode, version_of_put

T = TypeVar("T")

#: The memory map's first size; it doubles whenever a write fills it.
INITIAL_MAP_SIZE = 1 << 30
#: Reader slots in the lock file, shared by every process that has the database open.
MAX_READERS = 512
#: Keys fetched per read transaction while listing (transactions stay short).
_LIST_BATCH = 1024


def _lmdb() -> Any:
    try:
        import lmdb
    except ImportError:
        raise MissingDependencyError("lmdb", "lmdb", "lmdb:// stores") from None
    return lmdb


def path_from_url(url: str) -> Path:
    """``lmdb:///a/b`` or a plain path -> an absolute Path."""
    if url[:7].lower() == "lmdb://":
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise StoreError(f"lmdb URLs name no host, got {url!r}; write lmdb:///absolute/path")
        return Path(unquote(parts.path)).expanduser().resolve()
    return Path(url).expanduser().resolve()


class _Gate:
    """Transactions pass together; a remap of the memory map waits for them and holds them off."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._inside = 0
        self._held = False

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._held:
                self._cond.wait()
            self._inside += 1
        try:
            yield
        finally:
            with self._cond:
                self._inside -= 1
                if not self._inside:
                    self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            while self._held:
                self._cond.wait()
            self._held = True
            while self._inside:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._held = False
                self._cond.notify_all()


class _Op:
    """One queued write: ``apply(txn)`` runs inside the batch's transaction."""

    __slots__ = ("apply", "done", "error", "lead")

    def __init__(self, apply: Callable[[Any], None]) -> None:
        self.apply = apply
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.lead = False


class _Database:
    """One LMDB environment, shared by every handle on it in this process (LMDB requires it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handles = 0
        self.env: Any = None
        self.lock = threading.Lock()
        self.gate = _Gate()
        self.queue: list[_Op] = []
        self.queue_lock = threading.Lock()
        self.committing = False

    # -- opening ---------------------------------------------------------------------------------
    def environment(self, create: bool) -> Any:
        """The open environment; None when there is no database and ``create`` is False."""
        env = self.env
        if env is not None:
            return env
        with self.lock:
            if self.env is None:
                self.env = self._open(create)
            return self.env

    def _open(self, create: bool) -> Any:
        lmdb = _lmdb()
        path = self.path
        subdir = path.is_dir()
        data = path / "data.mdb" if subdir else path
        if not data.exists() and not create:
            return None
        lock = path / "lock.mdb" if subdir else Path(str(path) + "-lock")
        writable = all(os.access(p, os.W_OK) for p in (data, lock) if p.exists())
        size = data.stat().st_size if data.exists() else 0
        map_size = max(INITIAL_MAP_SIZE, 2 * size)
        try:
            if create:
                path.parent.mkdir(parents=True, exist_ok=True)
            return lmdb.open(
                str(path), map_size=map_size, subdir=subdir, readonly=not writable,
                create=create, metasync=False, max_readers=MAX_READERS, max_spare_txns=16,
                lock=writable,  # read-only media: no reader table to write
            )  # fmt: skip
        except PermissionError as exc:
            raise AccessDeniedError(f"cannot open {path}: permission denied") from exc
        except lmdb.InvalidError:
            raise StoreError(f"{path} is not an LMDB database") from None
        except (lmdb.Error, OSError) as exc:
            raise StoreError(f"cannot open the LMDB database {path}: {exc}") from exc

    def close(self) -> None:
        with self.lock, self.gate.exclusive():
            if self.env is not None:
                self.env.close()
                self.env = None

    # -- transactions ----------------------------------------------------------------------------
    def _adopt_size(self, env: Any, grow: bool) -> None:
        """Grow the map (``grow``), or take the size another process has grown it to."""
        with self.gate.exclusive():
            env.set_mapsize(env.info()["map_size"] * 2 if grow else 0)

    def read(self, fn: Callable[[Any], T], default: T) -> T:
        """``fn(txn)`` in a read transaction whose values are memoryviews into the map."""
        lmdb = _lmdb()
        env = self.environment(create=False)
        if env is None:
            return default
        while True:
            try:
                with self.gate.shared(), env.begin(buffers=True) as txn:
                    return fn(txn)
            except lmdb.MapResizedError:
                self._adopt_size(env, grow=False)
            except lmdb.Error as exc:
                raise StoreError(f"cannot read the LMDB database {self.path}: {exc}") from exc

    def write(self, apply: Callable[[Any], None]) -> None:
        """Run ``apply(txn)`` in a write transaction, batched with other threads' writes."""
        op = _Op(apply)
        with self.queue_lock:
            self.queue.append(op)
            lead = not self.committing
            self.committing = True
        if not lead:
            op.done.wait()
        if lead or op.lead:
            # This thread commits every write queued so far (its own among them), then hands the
            # next batch to the first thread still waiting.
            with self.queue_lock:
                batch, self.queue = self.queue, []
            try:
                self._commit(batch)
            finally:
                with self.queue_lock:
                    if self.queue:
                        self.queue[0].lead = True
                        self.queue[0].done.set()
                    else:
                        self.committing = False
        if op.error is not None:
            raise op.error

    def _commit(self, batch: list[_Op]) -> None:
        lmdb = _lmdb()
        try:
            env = self.environment(create=True)
            while True:
                try:
                    with self.gate.shared(), env.begin(write=True) as txn:
                        for op in batch:
                            op.apply(txn)
                    break
                except lmdb.MapFullError:
                    self._adopt_size(env, grow=True)
                except lmdb.MapResizedError:
                    self._adopt_size(env, grow=False)
        except BaseException as exc:
            if len(batch) > 1 and isinstance(exc, Exception):
                for op in batch:  # one at a time, so that each write gets its own error
                    self._commit([op])
                return
            error = _write_error(self.path, exc) if isinstance(exc, lmdb.Error) else exc
            for op in batch:
                op.error = error
        for op in batch:
            if op.lead:
                continue  # the thread that commits its own write was not waiting
            op.done.set()


def _write_error(path: Path, exc: BaseException) -> BaseException:
    lmdb = _lmdb()
    if isinstance(exc, lmdb.ReadonlyError):
        return AccessDeniedError(f"cannot write {path}: the LMDB file is not writable")
    if isinstance(exc, lmdb.DiskError) or "No space" in str(exc):
        return StoreError(f"cannot write {path}: no space left on device")
    return StoreError(f"cannot write the LMDB database {path}: {exc}")


_DATABASES: dict[str, _Database] = {}
# Re-entrant: a store dropped in a reference cycle is released by its finalizer whenever the
# garbage collector runs, which may be inside _acquire on the same thread (an allocation there
# triggers a collection); a plain lock would wait for itself there forever.
_DATABASES_LOCK = threading.RLock()


def _acquire(path: Path) -> _Database:
    with _DATABASES_LOCK:
        db = _DATABASES.get(str(path))
        if db is None:
            db = _DATABASES[str(path)] = _Database(path)
        db.handles += 1
        return db


def _release(db: _Database) -> None:
    with _DATABASES_LOCK:
        db.handles -= 1
        if db.handles == 0:
            del _DATABASES[str(db.path)]
            db.close()


def _version_of(value: memoryview | bytes, encoding: str | None) -> str:
    """The version of a stored value: its length and two CRCs of different polynomials.

    Every put returns its version, so this runs once per chunk written: the hardware CRCs of
    ISA-L (CRC-32) and google-crc32c (CRC-32C) take 15 us for 256 KiB, where BLAKE2 takes 400.
    Two values of one length share a version only if their difference is a multiple of both
    polynomials, a chance of 2**-64 for a change that was not crafted to collide (versions
    detect concurrent writers; they are no defence against an attacker who can write).
    """
    crcs = f"{crc32c.checksum(value):08x}{isal_zlib.crc32(value):08x}"
    return f"{len(value):x}-{crcs}-{encoding or ''}"


class LmdbStore(Store):
    """A dataset in one LMDB file (see the module notes)."""

    schemes = ("lmdb",)
    conditional_writes = True

    def __init__(self, url: str | os.PathLike[str], *, read_only: bool = False) -> None:
        super().__init__(read_only=read_only)
        _lmdb()
        self.path = path_from_url(os.fspath(url))
        self._db = _acquire(self.path)
        #: key -> ((transaction id, size, encoding) of the snapshot hashed, version).
        self._digests: dict[str, tuple[tuple[int, int, str | None], str]] = {}
        self._closed = False
        self._finalizer = weakref.finalize(self, _release, self._db)

    @property
    def url(self) -> str:
        return "lmdb://" + self.path.as_uri().removeprefix("file://")

    @property
    def default_concurrency(self) -> int:
        return local_disk_concurrency()

    def __getstate__(self) -> dict[str, Any]:
        return self._reopen_state()

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["url"], read_only=state["read_only"])  # type: ignore[misc]
        self.allow_parent_keys = state.get("allow_parent_keys", False)

    def close(self) -> None:
        """Let go of the database (the environment closes with its last handle)."""
        if not self._closed:
            self._closed = True
            self._finalizer()

    def _usable(self) -> _Database:
        if self._closed:
            raise StoreError(f"{self.url} is closed; open it again to use it")
        return self._db

    # -- keys ------------------------------------------------------------------------------------
    @staticmethod
    def _variants(key: str) -> list[tuple[bytes, str | None]]:
        return [(name.encode(), e) for name, e in content_encoding.stored_names(key)]

    @staticmethod
    def _find(
        txn: Any, key: str, encoding: str | None = ANY_ENCODING
    ) -> tuple[memoryview, str | None] | None:
        for name, stored in content_encoding.stored_names(key, encoding):
            raw = name.encode()
            if len(raw) > 511:
                return None
            value = txn.get(raw)
            if value is not None:
                return value, stored
        return None

    # -- the contract ----------------------------------------------------------------------------
    def _get_encoded(self, key: str) -> tuple[bytes, str | None] | None:
        return self._get_encoded_as(key, ANY_ENCODING)

    names_encodings = True

    def _get_encoded_as(self, key: str, encoding: str | None) -> tuple[bytes, str | None] | None:
        def fn(txn: Any) -> tuple[bytes, str | None] | None:
            found = self._find(txn, key, encoding)
            return None if found is None else (bytes(found[0]), found[1])

        return self._usable().read(fn, None)

    def _get(self, key: str) -> bytes | None:
        return content_encoding.decode_stored(self._get_encoded(key), key)

    def _get_range(self, key: str, start: int, length: int | None) -> bytes | None:
        def fn(txn: Any) -> tuple[bytes, str | None] | None:
            found = self._find(txn, key)
            if found is None:
                return None
            value, encoding = found
            if encoding is not None:
                return bytes(value), encoding
            if start < 0:
                return bytes(value[start:]), None
            stop = len(value) if length is None else start + length
            return bytes(value[start:stop]), None

        got = self._usable().read(fn, None)
        if got is None:
            return None
        data, encoding = got
        if encoding is None:
            return data
        return super()._get_range(key, start, length)  # decode the whole value, then cut

    def _check_key(self, key: str) -> None:
        longest = max(len(raw) for raw, _ in self._variants(key))
        if longest > 511:
            raise UnsupportedError(
                f"LMDB keys are at most 511 bytes; {key[:60]!r}... needs {longest} with its suffix"
            )

    def _put(self, key: str, value: Buffer, encoding: str | None) -> str:
        return self._put_if_version(key, value, ANY_VERSION, encoding)

    def _delete(self, key: str) -> None:
        db = self._usable()
        if db.environment(create=False) is None:
            return  # no database, nothing to delete: do not create one
        variants = [raw for raw, _ in self._variants(key) if len(raw) <= 511]

        def apply(txn: Any) -> None:
            for raw in variants:
                txn.delete(raw)

        db.write(apply)

    def _exists(self, key: str) -> bool:
        return self._size(key) is not None

    def _size(self, key: str) -> int | None:
        def fn(txn: Any) -> int | None:
            found = self._find(txn, key)
            return None if found is None else len(found[0])

        return self._usable().read(fn, None)

    def _list(self, prefix: str) -> Iterator[str]:
        db = self._usable()
        start = prefix.encode()
        suffixes = [s.encode() for s in content_encoding.SUFFIXES.values()]
        after: bytes | None = None

        def batch(txn: Any) -> tuple[list[str], bytes | None]:
            """Up to _LIST_BATCH keys after ``after``, and the last raw key looked at."""
            cursor = txn.cursor()
            if not cursor.set_range(after if after is not None else start):
                return [], None
            keys, last = [], None
            for item in cursor.iternext(keys=True, values=False):
                raw = bytes(item)
                if raw == after:
                    continue
                if not raw.startswith(start):
                    break
                last = raw
                base = next((raw[: -len(s)] for s in suffixes if raw.endswith(s)), raw)
                # A key's encoded twin (KEY.gz beside KEY) counts once: only where get() finds it.
                if base != raw and not self._found_at(txn, base, raw):
                    continue
                key = base.decode(errors="replace")
                if key.startswith(prefix):
                    keys.append(key)
                if len(keys) >= _LIST_BATCH:
                    break
            return keys, last

        nothing: tuple[list[str], bytes | None] = ([], None)
        while True:
            keys, last = db.read(batch, nothing)
            yield from keys
            if last is None:
                return
            after = last

    @staticmethod
    def _found_at(txn: Any, base: bytes, raw: bytes) -> bool:
        """True when ``raw`` is the first of ``base``'s variants that exists."""
        for candidate, _ in LmdbStore._variants(base.decode(errors="replace")):
            if candidate == raw:
                return True
            if len(candidate) <= 511 and txn.get(candidate) is not None:
                return False
        return True

    # -- conditional writes: the version is a digest of the stored bytes and their encoding ------
    def _get_with_version(
        self, key: str, max_size: int | None = None
    ) -> tuple[bytes | None, str | None]:
        return self._get_with_version_as(key, max_size, ANY_ENCODING)

    def _get_with_version_as(
        self, key: str, max_size: int | None, encoding: str | None
    ) -> tuple[bytes | None, str | None]:
        def fn(txn: Any) -> tuple[bytes, str | None, str] | None:
            found = self._find(txn, key, encoding)
            if found is None:
                return None
            value, stored = found
            return bytes(value), stored, _version_of(value, stored)

        got = self._usable().read(fn, None)
        if got is None:
            return None, None
        data, stored, version = got
        plain = content_encoding.decode(data, stored, key, max_size) if stored else data
        return plain, version

    def _get_range_with_version(
        self, key: str, start: int, length: int | None
    ) -> tuple[bytes | None, str | None]:
        # One read transaction for the range and the version, so both name one value. The
        # version is a digest of the whole value, as for get_with_version; it is hashed again
        # only when a write was committed since it last was (the snapshot's transaction id).
        def fn(txn: Any) -> tuple[bytes, str | None, str] | None:
            found = self._find(txn, key)
            if found is None:
                return None
            value, encoding = found
            snapshot = (txn.id(), len(value), encoding)
            known = self._digests.get(key)
            if known is not None and known[0] == snapshot:
                version = known[1]
            else:
                version = _version_of(value, encoding)
                self._digests[key] = (snapshot, version)
            if encoding is not None:
                return bytes(value), encoding, version
            if start < 0:
                return bytes(value[start:]), None, version
            stop = len(value) if length is None else start + length
            return bytes(value[start:stop]), None, version

        got = self._usable().read(fn, None)
        if got is None:
            return None, None
        data, encoding, version = got
        if encoding is not None:  # stored encoded: decode the whole value, then cut
            data = content_encoding.decode(data, encoding, key)
            return cut_range(data, start, length), version
        return data, version

    def _check_version(self, txn: Any, key: str, version: str | None) -> None:
        if version == ANY_VERSION:
            return
        found = self._find(txn, key)
        current = None if found is None else _version_of(*found)
        if current != version:
            raise VersionConflictError(key, self.url)

    def _put_if_version(
        self, key: str, value: Buffer, version: str | None, encoding: str | None
    ) -> str:
        # The caller may reuse its buffer before the commit (an interrupted wait): a copy.
        return self._put_blob(key, bytes(memoryview(value).cast("B")), version, encoding)

    def _put_parts(
        self, key: str, parts: list[memoryview], mode: PutMode, version: str | None
    ) -> str:
        # LMDB stores a value from one buffer (py-lmdb has no MDB_RESERVE to fill in place):
        # the parts are joined once, into bytes of our own, and not copied again.
        blob = b"".join(parts)
        return self._put_blob(key, blob, version_of_put(mode, version), None)

    def _put_blob(self, key: str, blob: bytes, version: str | None, encoding: str | None) -> str:
        content_encoding.check(encoding)
        self._check_key(key)
        variants = self._variants(key)
        target = next(raw for raw, e in variants if e == encoding)

        def apply(txn: Any) -> None:
            self._check_version(txn, key, version)
            for raw, _ in variants:
                if raw != target:
                    txn.delete(raw)
            txn.put(target, blob)

        self._usable().write(apply)
        return _version_of(memoryview(blob), encoding)

    def _delete_if_version(self, key: str, version: str | None) -> None:
        variants = self._variants(key)

        def apply(txn: Any) -> None:
            self._check_version(txn, key, version)
            for raw, _ in variants:
                txn.delete(raw)

        self._usable().write(apply)
