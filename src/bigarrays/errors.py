"""The exception tree of bigarrays.

Every error derives from :class:`BigArraysError` and, where one fits, from the builtin that a
caller would naturally catch (``FileNotFoundError``, ``IndexError``, ``ValueError``,
``PermissionError``), so ``except IndexError`` keeps working for code written against NumPy.
"""

from __future__ import annotations

from collections.abc import Iterable


class BigArraysError(Exception):
    """Base of every error raised by bigarrays."""


class BigArraysWarning(UserWarning):
    """Base of every warning issued by bigarrays."""


class ViewerCompatibilityWarning(BigArraysWarning):
    """A dataset uses a feature that Neuroglancer (or another viewer) cannot display."""


# --- metadata -----------------------------------------------------------------------------------


class InvalidInfoError(BigArraysError, ValueError):
    """The ``info`` document is malformed; ``field`` names the offending member."""

    def __init__(self, message: str, *, field: str | None = None, url: str | None = None) -> None:
        self.field = field
        self.url = url
        self.detail = message
        where = f" in {url}" if url else ""
        prefix = f"invalid info field {field!r}{where}: " if field else f"invalid info{where}: "
        super().__init__(prefix + message)


class DatasetNotFoundError(BigArraysError, FileNotFoundError):
    """No ``info`` file exists at the URL that was opened."""


class DatasetExistsError(BigArraysError, FileExistsError):
    """``create`` was asked to write where a dataset already exists and ``overwrite`` is False."""


class ScaleNotFoundError(BigArraysError, IndexError):
    """A mip level was asked for that the dataset does not have."""


# --- data ---------------------------------------------------------------------------------------


class ChunkNotFoundError(BigArraysError, FileNotFoundError):
    """A chunk inside the bounds was never written and ``fill_missing`` is False."""

    def __init__(self, key: str, url: str | None = None) -> None:
        self.key = key
        where = f" of {url}" if url else ""
        super().__init__(
            f"chunk {key!r}{where} does not exist; open with fill_missing=True to read it as zeros"
        )


class CorruptChunkError(BigArraysError, ValueError):
    """A chunk's bytes cannot be decoded into the box it should hold."""

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(f"corrupt chunk {key!r}: {reason}")


class OutOfBoundsError(BigArraysError, IndexError):
    """A write reaches outside the volume's bounds; nothing was written."""


class ShapeMismatchError(BigArraysError, ValueError):
    """An array given to a write does not have the shape of the box it is written to."""


class DtypeMismatchError(BigArraysError, TypeError):
    """An array's data type cannot be cast safely to the volume's."""


class UnsupportedError(BigArraysError, ValueError):
    """A valid request for something bigarrays does not do (yet), such as an unknown encoding."""


# --- stores -------------------------------------------------------------------------------------


class StoreError(BigArraysError, OSError):
    """A store failed to carry out a request."""


class VersionConflictError(StoreError):
    """A conditional write found the value changed since it was read (another writer was first).

    Raised by a conditional ``Store.put`` / ``delete_if_version``; the sharded writer catches it,
    re-reads and retries.
    """

    def __init__(self, key: str, url: str | None = None) -> None:
        self.key = key
        where = f" of {url}" if url else ""
        super().__init__(f"{key!r}{where} changed since it was read; nothing was written")


class UnknownSchemeError(BigArraysError, ValueError):
    """A URL names a scheme that no store is registered for."""

    def __init__(self, scheme: str, known: Iterable[str]) -> None:
        self.scheme = scheme
        self.known = sorted(known)
        super().__init__(
            f"no store for URL scheme {scheme!r}; known schemes: {', '.join(self.known)}"
        )


class ReadOnlyError(BigArraysError, PermissionError):
    """A write was attempted on a store or volume opened read-only."""


class AccessDeniedError(StoreError, PermissionError):
    """The store refused the request for lack of permission."""


class CredentialsError(StoreError, PermissionError):
    """The store did not accept the credentials: missing, malformed, expired or unknown keys.

    Unlike :class:`AccessDeniedError` (valid credentials that lack a permission), the fix is to
    supply other credentials, or none at all (``anonymous=True``) for a public bucket.
    """


class BucketNotFoundError(StoreError, FileNotFoundError):
    """The bucket (or the server's root) named by a URL does not exist."""


class StoreUnavailableError(StoreError, ConnectionError):
    """A store kept failing with transient errors (5xx, throttling, dropped connections).

    Raised once the retries allowed by the store's retry policy are used up.
    """


class MissingDependencyError(BigArraysError, ImportError):
    """An optional package that a feature needs is not installed."""

    def __init__(self, package: str, extra: str, feature: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(
            f"{feature} needs the package {package!r}: pip install 'bigarrays[{extra}]'"
        )


class StaleReadError(VersionConflictError):
    """A conditional read found the value no longer at the version it was asked at.

    Raised by ``Store.get_range_if_version``; the sharded reader catches it, drops what it had
    derived from the old version (cached indexes) and reads again.
    """

    def __init__(self, key: str, url: str | None = None, reason: str | None = None) -> None:
        where = f" of {url}" if url else ""
        detail = reason or "changed since its version was read; nothing was read"
        StoreError.__init__(self, f"{key!r}{where} {detail}")
        self.key = key


class InvalidKeyError(BigArraysError, ValueError):
    """A store key that cannot name an object: empty, absolute, or holding a NUL byte."""


class KeyOutsideRootError(InvalidKeyError):
    """A store key resolves outside the store's root (``../x``) and the store does not allow it.

    The precomputed format lets a scale's key point beside the dataset (``../other/8_8_40``);
    open the dataset with ``allow_parent_keys=True`` when it really shares data that way.
    """

    def __init__(self, key: str, url: str | None = None) -> None:
        self.key = key
        where = f" of {url}" if url else ""
        super().__init__(
            f"key {key!r} resolves outside the root{where}; keys name objects below the root. "
            "A dataset whose scales really live beside it opens with allow_parent_keys=True"
        )


class ArrayClosedError(BigArraysError, ValueError):
    """A read or write on an array after its ``close()`` (as on a closed file)."""


class InvalidCodecError(BigArraysError, ValueError):
    """A codec's JSON (a Zarr ``codecs`` entry, a Zarr v2 ``compressor`` or filter) is malformed."""

    def __init__(self, codec: str, reason: str) -> None:
        self.codec = codec
        self.reason = reason
        super().__init__(f"invalid codec {codec!r}: {reason}")


class InvalidMetadataError(InvalidInfoError):
    """Format metadata other than a precomputed ``info`` is malformed: a ``zarr.json``, a
    ``.zarray`` / ``.zattrs``, or the OME-NGFF attributes of a group; ``field`` names the member.
    """

    def __init__(self, message: str, *, field: str | None = None, url: str | None = None) -> None:
        super().__init__(message, field=field, url=url)
        where = f" in {url}" if url else ""
        prefix = (
            f"invalid metadata field {field!r}{where}: " if field else f"invalid metadata{where}: "
        )
        self.args = (prefix + message,)


class DownsampleMethodError(BigArraysError, ValueError):
    """A downsampling method that bigarrays does not know (``"average"`` for ``"mean"``)."""


class MethodDtypeError(DownsampleMethodError, TypeError):
    """A downsampling method that does not fit the data type (``mean`` of bool labels, ``min`` of
    complex numbers); the message names the methods that do."""


class FloatModeWarning(BigArraysWarning):
    """``mode`` of a floating-point image: allowed, but almost every cell of a continuous image
    has distinct values, so the result is the lowest value of each cell, not a typical one."""


class DownsampleFactorError(BigArraysError, ValueError):
    """A downsampling factor that is not a positive integer per axis, or a list of cumulative
    factors in which one is not a multiple of the one before."""


class LevelExistsError(BigArraysError, FileExistsError):
    """A pyramid level would replace levels the dataset has already (pass ``overwrite=True``)."""


class InvalidIndexError(BigArraysError, IndexError, TypeError):
    """An index a volume cannot take: a list, a boolean mask or an index array, a float, too
    many indices, or a channel index on a one-channel volume.

    It is an ``IndexError`` as NumPy's is, and a ``TypeError`` as the wrong type of index was one
    before.
    """


class ArrayTooLargeError(BigArraysError, MemoryError):
    """``np.asarray(vol)`` would read more than the array's ``array_limit`` bytes into memory."""


class InvalidArgumentError(BigArraysError, ValueError):
    """An argument of ``open`` / ``create`` (or another call) has a value it cannot take."""


class UnsizedArrayError(BigArraysError, TypeError):
    """``len()`` or iteration of a 0-d array, which has no first axis (as NumPy's TypeError)."""


class ResizeRefusedError(UnsupportedError):
    """A resize the format could only do by rewriting much of the dataset (a sharded scale past
    its grid, a precomputed origin moved by part of a chunk), or cannot do at all (a Zarr array
    below 0); the message says how to avoid it."""


class InvalidReferencesError(BigArraysError, ValueError):
    """A references document (kerchunk JSON v0 / v1, or the Parquet layout) is malformed: the
    message names the key or member and what was expected."""


class BrokenReferenceError(CorruptChunkError):
    """A reference names bytes its target does not hold: the file is missing, or the range
    reaches past its end."""


class StreamWriteError(StoreError):
    """A streaming writer could not store its frames (a store that refused a write, a full
    disk): raised by the next ``append`` or by ``close``; the dataset keeps the frames up to
    the last checkpoint, from where ``ba.stream(url, resume=True)`` continues."""


class StreamClosedError(BigArraysError, ValueError):
    """``append`` to a stream that was closed."""


class ViewerPortInUseError(BigArraysError, OSError):
    """The viewer's server could not listen on the port it was asked for: another process (or
    another viewer server of this process) holds it."""

    def __init__(self, bind: str, port: int, reason: str) -> None:
        self.bind = bind
        self.port = port
        super().__init__(
            f"cannot serve the viewer on {bind}:{port}: {reason}; choose another port "
            "(port=None picks a free one) or stop the program that holds it"
        )
