"""Amazon S3 and S3-compatible stores (MinIO, Ceph, ...): ``s3://bucket/prefix``.

The client is boto3 (extra ``s3``). It was chosen over obstore by measurement and by what the
errors carry: obstore moved a 256 KiB chunk with a third of boto3's client CPU, but its errors
are text only (a missing bucket and a missing key are the same ``NotFoundError``, a 503 and a
refused connection the same ``GenericError``), and it has no AWS profiles. boto3's errors carry
S3's error code and HTTP status, which this module turns into typed errors without parsing
messages, and its credential chain is the standard one (environment, ``AWS_PROFILE`` and the
shared files, SSO, container and instance roles).

- Endpoint: the ``endpoint`` option, else ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``, else
  AWS. A custom endpoint uses path-style addressing, which S3-compatible servers expect.
- ``anonymous=True`` sends unsigned requests (public buckets) and reads no credentials.
- Transfer encodings are the object's ``Content-Encoding``, as the precomputed spec has it, and
  reads decode whatever header an object carries, so datasets written by CloudVolume, TensorStore
  or ``aws s3 cp --content-encoding`` read the same.
- Single-object GETs, PUTs, HEADs and DELETEs (every chunk) are sent by
  :mod:`bigarrays.stores.s3_objects`, signed by botocore but without boto3's per-request
  machinery, at half its CPU; boto3 does the rest.
- A value larger than ``MULTIPART_THRESHOLD`` goes up as a multipart upload of ``PART_SIZE``
  parts; one given in pieces (``put_parts``, a shard) does so from one part's size on, its parts
  cut from the pieces one at a time, so the value is never joined whole. Pieces an iterator
  gives (a shard whose chunks are still being encoded) are uploaded as they come.
- botocore's own retries are off: :mod:`bigarrays.stores.retry` does them, the same for every
  backend. Checksums are computed only where S3 requires them, which S3-compatible servers that
  lack the newer checksum headers need.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar
from urllib.parse import urlsplit

from bigarrays.errors import (
    BucketNotFoundError,
    CredentialsError,
    MissingDependencyError,
    StaleReadError,
    StoreError,
    VersionConflictError,
)
from bigarrays.stores import content_encoding
from bigarrays.stores.base import Buffer
from bigarrays.stores.parts import cut_parts, drain, first_parts
from bigarrays.stores.remote import (
    RemoteStore,
    as_stored,
    decode_body,
    encodings,
    iter_pages,
    range_header,
    require,
    to_bytes,
)
from bigarrays.stores.retry import (
    RetryPolicy,
    is_transient_status,
)
from bigarrays.stores.s3_errors import is_conflict, is_missing, s3_error, translate_error
from bigarrays.stores.s3_objects import ObjectRequests
from bigarrays.stores.versions import ANY_VERSION, PutMode, version_of_put

T = TypeVar("T")


def _condition(version: str | None) -> dict[str, str]:
    """The precondition of a put at ``version`` (as ``_put_if_version`` takes it: None, only
    where there is no object; :data:`ANY_VERSION`, none) as S3 takes it."""
    if version == ANY_VERSION:
        return {}
    return {"IfNoneMatch": "*"} if version is None else {"IfMatch": str(version)}


class _Missing:
    """The object does not exist (the bucket does)."""


_MISSING = _Missing()


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` (or ``bucket/a/b``) -> ``("bucket", "a/b")``."""
    rest = url[len("s3://") :] if url.lower().startswith("s3://") else url
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise StoreError(f"an S3 URL names a bucket: s3://BUCKET/PREFIX, got {url!r}")
    return bucket, "/".join(p for p in prefix.split("/") if p)


def _env_endpoint() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


_CLIENTS: dict[tuple[Any, ...], Any] = {}
_CLIENTS_LOCK = threading.Lock()


def _botocore_session() -> Any:
    """A new botocore session whose service models come from one shared, caching loader.

    Parsing the S3 model is most of the cost of a new client (~150 ms); shared, it is ~30 ms.
    """
    global _LOADER
    import botocore.loaders
    import botocore.session

    with _CLIENTS_LOCK:
        if _LOADER is None:
            _LOADER = botocore.loaders.create_loader()
        loader = _LOADER
    session = botocore.session.get_session()
    session.register_component("data_loader", loader)
    return session


_LOADER: Any = None


class _Client:
    """One process's client (boto3's, with the short path of :mod:`bigarrays.stores.s3_objects`
    for single objects), and whether this store's bucket was seen to exist."""

    def __init__(self, client: Any) -> None:
        self.s3 = client
        self.bucket_ok = False


class S3Store(RemoteStore):
    schemes = ("s3",)
    #: Values larger than this are uploaded in parts of ``PART_SIZE`` bytes.
    MULTIPART_THRESHOLD = 512 * 2**20
    PART_SIZE = 128 * 2**20

    def __init__(
        self,
        url: str,
        *,
        read_only: bool = False,
        endpoint: str | None = None,
        anonymous: bool = False,
        region: str | None = None,
        profile: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
        concurrency: int | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        require("boto3", "boto3", "s3", "s3:// URLs")
        self.bucket, self.prefix = parse_s3_url(url)
        endpoint = endpoint or _env_endpoint()
        if endpoint is not None:
            endpoint = endpoint.rstrip("/")
            if urlsplit(endpoint).scheme not in ("http", "https"):
                raise StoreError(f"an S3 endpoint is an http(s) URL, got {endpoint!r}")
        if (access_key_id is None) != (secret_access_key is None):
            raise CredentialsError("pass access_key_id and secret_access_key together")
        self.endpoint = endpoint
        self.anonymous = bool(anonymous)
        self.region = region
        self.profile = profile
        self._keys = (access_key_id, secret_access_key, session_token)
        super().__init__(read_only=read_only, concurrency=concurrency, retry=retry)

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    @property
    def options(self) -> dict[str, Any]:
        opts = super().options
        names = ("endpoint", "region", "profile")
        opts.update({n: getattr(self, n) for n in names if getattr(self, n) is not None})
        if self.anonymous:
            opts["anonymous"] = True
        key, secret, token = self._keys
        if key is not None:
            opts.update(access_key_id=key, secret_access_key=secret)
        if token is not None:
            opts["session_token"] = token
        return opts

    def _config(self) -> tuple[Any, ...]:
        return (*super()._config(), self.endpoint, self.anonymous, self.region, self.profile,
                self._keys)  # fmt: skip

    def __repr__(self) -> str:
        extra = f", endpoint={self.endpoint!r}" if self.endpoint else ""
        extra += ", anonymous=True" if self.anonymous else ""
        extra += ", read_only=True" if self.read_only else ""
        return f"S3Store({self.url!r}{extra})"

    # -- the client --------------------------------------------------------------------------------
    def _connect(self) -> _Client:
        # A boto3 client takes ~50 ms to make and is safe to share between threads: stores of
        # one configuration share one per process (the AWS environment is part of the key,
        # since credentials and settings come from it).
        env = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_")))
        key = (os.getpid(), self.endpoint, self.anonymous, self.region, self.profile,
               self._keys, self.concurrency, env)  # fmt: skip
        with _CLIENTS_LOCK:
            client = _CLIENTS.get(key)
        if client is None:
            client = self._new_client()
            with _CLIENTS_LOCK:
                client = _CLIENTS.setdefault(key, client)
        return _Client(client)

    def _new_client(self) -> Any:
        try:
            import boto3.session
            import botocore.config
            import botocore.exceptions
        except ImportError:
            raise MissingDependencyError("boto3", "s3", "s3:// URLs") from None
        try:
            return self._make_client(boto3.session, botocore)
        except botocore.exceptions.ProfileNotFound as exc:
            raise CredentialsError(
                f"{exc}; name a profile of your AWS config files, or leave profile unset"
            ) from None

    def _make_client(self, sessions: Any, botocore: Any) -> Any:
        key, secret, token = self._keys
        core = _botocore_session()
        session = sessions.Session(
            profile_name=self.profile, aws_access_key_id=key, aws_secret_access_key=secret,
            aws_session_token=token, botocore_session=core,
        )  # fmt: skip
        extra: dict[str, Any] = {}
        if self.anonymous:
            extra["signature_version"] = botocore.UNSIGNED
        if self.endpoint is not None:
            extra["s3"] = {"addressing_style": "path"}
        config = botocore.config.Config(
            max_pool_connections=self.concurrency,
            retries={"total_max_attempts": 1},
            connect_timeout=10,
            read_timeout=60,
            tcp_keepalive=True,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            **extra,
        )
        client = session.client("s3", endpoint_url=self.endpoint, region_name=self.region,
                                config=config)  # fmt: skip
        return ObjectRequests(client, core.get_credentials, anonymous=self.anonymous,
                              ca_bundle=core.get_config_variable("ca_bundle"),
                              pool_size=self.concurrency, connect_timeout=config.connect_timeout,
                              read_timeout=config.read_timeout)  # fmt: skip

    def _name(self, key: str) -> str:
        return self.join_root(self.prefix, key, self.url)

    def _what(self, op: str, key: str | None) -> str:
        return f"{op} {self.url}/{key}" if key else f"{op} {self.url}"

    def _request(self, op: str, key: str | None, fn: Callable[[Any], T]) -> T | _Missing:
        """``fn(boto3 client)``: retried, errors typed; :data:`_MISSING` for a missing object."""
        what = self._what(op, key)
        holder: _Client = self.client()

        def attempt() -> T | _Missing:
            try:
                return fn(holder.s3)
            except Exception as exc:
                if is_missing(exc):
                    self._check_bucket(holder, what)
                    return _MISSING
                raise self._translate(exc, what) from exc

        return self._call(what, attempt)

    def _check_bucket(self, holder: _Client, what: str) -> None:
        """A 404 from HEAD says nothing of why: make sure once that the bucket exists."""
        if holder.bucket_ok:
            return
        try:
            holder.s3.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            err = s3_error(exc)
            if err is None or err[1] != 404:
                # Denied (common with anonymous access to public buckets) or failing: the object
                # answer stands; transient failures retry the whole attempt.
                if err is None or is_transient_status(err[1]):
                    raise self._translate(exc, what) from exc
                holder.bucket_ok = True  # denied: it exists, or we may not know; ask no more
                return
            raise self._no_bucket(what) from None
        holder.bucket_ok = True

    def _no_bucket(self, what: str) -> BucketNotFoundError:
        where = f"at {self.endpoint}" if self.endpoint else "on AWS"
        return BucketNotFoundError(
            f"{what}: bucket {self.bucket!r} does not exist {where}; check the bucket name in "
            "the URL, and the endpoint (endpoint= or AWS_ENDPOINT_URL) for S3-compatible stores"
        )

    def _translate(self, exc: BaseException, what: str) -> Exception:
        """A typed permanent error, or :class:`Transient` for one worth another try."""
        return translate_error(exc, what, anonymous=self.anonymous, no_bucket=self._no_bucket)

    # -- the contract ------------------------------------------------------------------------------
    def _get(self, key: str) -> bytes | None:
        name = self._name(key)

        def fn(s3: Any) -> tuple[bytes, str | None]:
            r = s3.get_object(Bucket=self.bucket, Key=name)
            return r["Body"].read(), r.get("ContentEncoding")

        got = self._request("GET", key, fn)
        if isinstance(got, _Missing):
            return None
        return decode_body(got[0], got[1], key)

    def _get_encoded(self, key: str) -> tuple[bytes, str | None] | None:
        name = self._name(key)

        def fn(s3: Any) -> tuple[bytes, str | None]:
            r = s3.get_object(Bucket=self.bucket, Key=name)
            return r["Body"].read(), r.get("ContentEncoding")

        got = self._request("GET", key, fn)
        return None if isinstance(got, _Missing) else as_stored(got[0], got[1], key)

    def _get_range(self, key: str, start: int, length: int | None) -> bytes | None:
        if length == 0:
            return b"" if self._exists(key) else None
        spec = range_header(start, length)
        name = self._name(key)

        def fn(s3: Any) -> tuple[bytes | None, str | None]:
            try:
                r = s3.get_object(Bucket=self.bucket, Key=name, Range=spec)
            except Exception as exc:
                err = s3_error(exc)
                if err is not None and (err[0] == "InvalidRange" or err[1] == 416):
                    return None, None  # past the end of the stored bytes
                raise
            return r["Body"].read(), r.get("ContentEncoding")

        got = self._request("GET", key, fn)
        if isinstance(got, _Missing):
            return None
        data, encoding = got
        if data is not None and not encodings(encoding):
            return data
        # Encoded stored bytes (ranges of them mean nothing), or a range past their end, which
        # may still lie inside the decoded value: decode all and cut.
        return super()._get_range(key, start, length)

    def _put(
        self,
        key: str,
        value: Buffer,
        encoding: str | None,
        *,
        condition: dict[str, str] | None = None,
    ) -> str:
        """Upload; ``condition`` is ``{"IfMatch": etag}`` or ``{"IfNoneMatch": "*"}``. The new
        object's ETag."""
        content_encoding.check(encoding)
        body = to_bytes(value)
        name = self._name(key)
        extra: dict[str, str] = {"ContentType": "application/octet-stream"}
        if encoding is not None:
            extra["ContentEncoding"] = encoding
        if len(body) > self.MULTIPART_THRESHOLD:
            return self._put_multipart(key, name, [memoryview(body)], extra, condition or {})
        tries = 0

        def put(s3: Any) -> str:
            nonlocal tries
            tries += 1
            try:
                r = s3.put_object(Bucket=self.bucket, Key=name, Body=body, **extra,
                                  **(condition or {}))  # fmt: skip
                return str(r["ETag"])
            except Exception as exc:
                if not is_conflict(exc):
                    raise
                # A retried write may have landed the first time, its answer lost: then the
                # object is ours (a single PUT's ETag is the MD5 of its bytes).
                ours = f'"{hashlib.md5(body).hexdigest()}"'
                if tries > 1 and self._etag(s3, name) == ours:
                    return ours
                raise VersionConflictError(key, self.url) from None

        etag = self._request("PUT", key, put)
        if isinstance(etag, _Missing):
            # "NoSuchKey" to a PUT: its If-Match named an object that is gone.
            raise VersionConflictError(key, self.url)
        return etag

    def _etag(self, s3: Any, name: str) -> str | None:
        try:
            return str(s3.head_object(Bucket=self.bucket, Key=name)["ETag"])
        except Exception:
            return None

    def _put_parts(
        self, key: str, parts: list[memoryview], mode: PutMode, version: str | None
    ) -> str | None:
        """A value larger than a part goes up as a multipart upload whose parts are cut from
        ``parts`` one at a time: a shard is never joined whole, only one part's bytes are."""
        if sum(p.nbytes for p in parts) <= self.PART_SIZE:
            return super()._put_parts(key, parts, mode, version)  # joined: one request
        return self._put_multipart(key, self._name(key), parts,
                                   {"ContentType": "application/octet-stream"},
                                   _condition(version_of_put(mode, version)))  # fmt: skip

    writes_parts_in_turn = True

    def _put_parts_in_turn(
        self, key: str, parts: Iterator[memoryview], mode: PutMode, version: str | None
    ) -> str | None:
        """Parts an iterator gives: taken until they pass a part's size (a value no larger
        is one request, as :meth:`_put_parts` makes it); a larger one goes up as a multipart
        upload whose parts are cut as the iterator gives them, so a shard being encoded is
        uploaded while its last chunks are, and one part is held, not the shard."""
        head, larger = first_parts(parts, self.PART_SIZE)
        if not larger:
            return self._put_parts(key, head, mode, version)
        return self._put_multipart(key, self._name(key), itertools.chain(drain(head), parts),
                                   {"ContentType": "application/octet-stream"},
                                   _condition(version_of_put(mode, version)))  # fmt: skip

    def _put_multipart(
        self,
        key: str,
        name: str,
        body: Iterable[memoryview],
        extra: dict[str, str],
        condition: dict[str, str],
    ) -> str:
        created = self._request("PUT", key, lambda s3: s3.create_multipart_upload(
            Bucket=self.bucket, Key=name, **extra))  # fmt: skip
        assert not isinstance(created, _Missing)
        upload_id = created["UploadId"]
        parts = []
        try:
            for number, piece in enumerate(cut_parts(body, self.PART_SIZE), start=1):

                def upload(s3: Any, n: int = number, p: bytes = piece) -> Any:
                    return s3.upload_part(Bucket=self.bucket, Key=name, UploadId=upload_id,
                                          PartNumber=n, Body=p)  # fmt: skip

                done = self._request("PUT", key, upload)
                assert not isinstance(done, _Missing)
                parts.append({"PartNumber": number, "ETag": done["ETag"]})
                del piece, upload  # before the next part is cut: one part held at a time

            def complete(s3: Any) -> Any:
                try:
                    return s3.complete_multipart_upload(Bucket=self.bucket, Key=name,
                        UploadId=upload_id, MultipartUpload={"Parts": parts},
                        **condition)  # fmt: skip
                except Exception as exc:
                    if is_conflict(exc):
                        raise VersionConflictError(key, self.url) from None
                    raise

            done = self._request("PUT", key, complete)
            if isinstance(done, _Missing):  # If-Match named an object that is gone
                raise VersionConflictError(key, self.url)
            return str(done["ETag"])
        except BaseException:
            with contextlib.suppress(Exception):
                self.client().s3.abort_multipart_upload(
                    Bucket=self.bucket, Key=name, UploadId=upload_id
                )
            raise

    # -- conditional writes: ETags with If-Match / If-None-Match ----------------------------------
    conditional_writes = True

    def _get_with_version(
        self, key: str, max_size: int | None = None
    ) -> tuple[bytes | None, str | None]:
        name = self._name(key)

        def fn(s3: Any) -> tuple[bytes, str | None, str]:
            r = s3.get_object(Bucket=self.bucket, Key=name)
            return r["Body"].read(), r.get("ContentEncoding"), str(r["ETag"])

        got = self._request("GET", key, fn)
        if isinstance(got, _Missing):
            return None, None
        return decode_body(got[0], got[1], key, max_size), got[2]

    def _ranged_get(
        self, key: str, start: int, length: int | None, version: str | None
    ) -> tuple[bytes | None, str | None] | None:
        """One ranged GET (``If-Match: version`` when given) and the object's ETag; None when
        only the whole value will do (an encoded object, an empty or out-of-bounds range)."""
        if length == 0:
            return None
        name = self._name(key)
        spec = range_header(start, length)

        def fn(s3: Any) -> tuple[bytes, str | None, str] | None:
            try:
                if version is None:
                    r = s3.get_object(Bucket=self.bucket, Key=name, Range=spec)
                else:
                    r = s3.get_object(Bucket=self.bucket, Key=name, Range=spec, IfMatch=version)
            except Exception as exc:
                err = s3_error(exc)
                if err is not None and (err[0] == "InvalidRange" or err[1] == 416):
                    return None
                if version is not None and is_conflict(exc):
                    raise StaleReadError(key, self.url) from None
                raise
            return r["Body"].read(), r.get("ContentEncoding"), str(r["ETag"])

        got = self._request("GET", key, fn)
        if isinstance(got, _Missing):
            if version is not None:
                raise StaleReadError(key, self.url)
            return None, None
        if got is None or encodings(got[1]):
            return None
        return got[0], got[2]

    def _put_if_version(
        self, key: str, value: Buffer, version: str | None, encoding: str | None
    ) -> str:
        if version == ANY_VERSION:
            return self._put(key, value, encoding)  # every S3 PUT is atomic and ordered
        return self._put(key, value, encoding, condition=_condition(version))

    def _delete_if_version(self, key: str, version: str | None) -> None:
        if version == ANY_VERSION:
            self._delete(key)
            return
        if version is None:
            if self._exists(key):
                raise VersionConflictError(key, self.url)
            return
        name = self._name(key)

        def delete(s3: Any) -> Any:
            try:
                return s3.delete_object(Bucket=self.bucket, Key=name, IfMatch=version)
            except Exception as exc:
                if is_conflict(exc):
                    raise VersionConflictError(key, self.url) from None
                raise

        if isinstance(self._request("DELETE", key, delete), _Missing):
            raise VersionConflictError(key, self.url)

    def _delete(self, key: str) -> None:
        name = self._name(key)
        self._request("DELETE", key, lambda s3: s3.delete_object(Bucket=self.bucket, Key=name))

    def _head(self, key: str) -> int | None:
        name = self._name(key)
        got = self._request("HEAD", key, lambda s3: s3.head_object(Bucket=self.bucket, Key=name))
        return None if isinstance(got, _Missing) else int(got["ContentLength"])

    def _exists(self, key: str) -> bool:
        return self._head(key) is not None

    def _size(self, key: str) -> int | None:
        return self._head(key)

    def _list(self, prefix: str) -> Iterator[str]:
        root = f"{self.prefix}/" if self.prefix else ""

        def fetch(token: str | None) -> tuple[list[str], str | None]:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": root + prefix}
            if token:
                kwargs["ContinuationToken"] = token
            page = self._request("LIST", prefix, lambda s3: s3.list_objects_v2(**kwargs))
            if isinstance(page, _Missing):  # pragma: no cover - a listing has no missing key
                return [], None
            # Keys ending in "/" are folder markers of S3 consoles, not values.
            names = [o["Key"][len(root) :] for o in page.get("Contents", [])
                     if not o["Key"].endswith("/")]  # fmt: skip
            more = page.get("NextContinuationToken") if page.get("IsTruncated") else None
            return names, more

        return iter_pages(fetch)
