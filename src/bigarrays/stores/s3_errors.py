"""What S3's answers mean: a missing object, a lost race, or a typed error with what to do.

boto3's errors (and those of the short path of :mod:`bigarrays.stores.s3_objects`, which mimics
them) carry S3's error code and HTTP status; they are read here, never their messages.
"""

from __future__ import annotations

from collections.abc import Callable

from bigarrays.errors import AccessDeniedError, BucketNotFoundError, CredentialsError, StoreError
from bigarrays.stores.retry import (
    Transient,
    is_transient_exception,
    is_transient_status,
    parse_retry_after,
)

MISSING_CODES = frozenset({"NoSuchKey", "NotFound", "404"})
CREDENTIAL_CODES = frozenset({
    "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken",
    "TokenRefreshRequired", "InvalidSecurity", "MissingSecurityHeader",
    "AuthorizationHeaderMalformed",
    "InvalidClientTokenId", "UnrecognizedClientException", "ExpiredTokenException",
})  # fmt: skip
DENIED_CODES = frozenset({"AccessDenied", "AllAccessDisabled", "AccountProblem", "403"})
THROTTLE_CODES = frozenset({
    "SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "RequestTimeout",
    "RequestThrottled", "ServiceUnavailable", "InternalError", "TooManyRequestsException",
    "BandwidthLimitExceeded", "EC2ThrottledException", "PriorRequestNotComplete",
})  # fmt: skip


def s3_error(exc: BaseException) -> tuple[str, int, str, dict[str, str]] | None:
    """``(code, HTTP status, message, headers)`` of an S3 error answer; None for other failures."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict) or "Error" not in response:
        return None
    error = response.get("Error", {})
    meta = response.get("ResponseMetadata", {})
    return (str(error.get("Code", "")), int(meta.get("HTTPStatusCode", 0) or 0),
            str(error.get("Message", "")), dict(meta.get("HTTPHeaders", {})))  # fmt: skip


def is_missing(exc: BaseException) -> bool:
    """The object does not exist (or a HEAD of it answered 404, which says nothing of why)."""
    err = s3_error(exc)
    return err is not None and (err[0] in MISSING_CODES or (err[1] == 404 and not err[0]))


def is_conflict(exc: BaseException) -> bool:
    """A failed precondition, or S3's 409 for conditional writes that raced."""
    err = s3_error(exc)
    return err is not None and (
        err[0] in ("PreconditionFailed", "ConditionalRequestConflict") or err[1] == 412
    )


def translate_error(
    exc: BaseException,
    what: str,
    *,
    anonymous: bool,
    no_bucket: Callable[[str], BucketNotFoundError],
) -> Exception:
    """A typed permanent error, or :class:`Transient` for one worth another try; ``what`` names
    the request, ``anonymous`` says whether it was unsigned."""
    import botocore.exceptions as bex

    err = s3_error(exc)
    if err is not None:
        code, status, message, headers = err
        if code == "NoSuchBucket":
            return no_bucket(what)
        if code in CREDENTIAL_CODES or status == 401:
            return CredentialsError(
                f"{what}: the server did not accept the credentials ({code}: {message}); "
                "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE or the "
                "profile= option, or pass anonymous=True (--anon) for a public bucket"
            )
        if code in DENIED_CODES or status == 403:
            who = "anonymous requests" if anonymous else "the credentials in use"
            hint = (
                "use credentials that may access it" if anonymous
                else "grant them access, or pass anonymous=True (--anon) if it is public"
            )  # fmt: skip
            if anonymous and what.split(" ", 1)[0] in ("GET", "HEAD"):
                # S3 answers 403, not 404, for a missing object to whoever may not list the
                # bucket: in a public dataset that is how a never-written chunk looks.
                hint += (
                    "; or the object does not exist: S3 answers 403 rather than 404 when "
                    "the bucket does not let anonymous requests list it"
                )
            return AccessDeniedError(f"{what}: access denied to {who}; {hint}")
        if code in THROTTLE_CODES or is_transient_status(status):
            after = parse_retry_after(headers.get("retry-after"))
            return Transient(f"{code or status}: {message}", retry_after=after)
        return StoreError(f"{what}: {code or status}: {message or 'request refused'}")
    if isinstance(exc, bex.NoCredentialsError | bex.PartialCredentialsError):
        return CredentialsError(
            f"{what}: no AWS credentials found ({exc}); set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or pass anonymous=True (--anon) for a "
            "public bucket"
        )
    if isinstance(exc, bex.ProfileNotFound):
        return CredentialsError(f"{what}: {exc}; name a profile of your AWS config files")
    if isinstance(exc, bex.CredentialRetrievalError | bex.UnknownCredentialError):
        return CredentialsError(f"{what}: could not get AWS credentials: {exc}")
    if isinstance(exc, bex.HTTPClientError | bex.IncompleteReadError) or is_transient_exception(
        exc
    ):
        return Transient(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, Transient | StoreError | TypeError | ValueError):
        return exc  # ours (the short path's network failures), or a caller's mistake
    return StoreError(f"{what}: {type(exc).__name__}: {exc}")
