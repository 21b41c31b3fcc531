"""Authentication of the GCS store (:mod:`bigarrays.stores.gcs`): Google credentials loaded with
google-auth (extra ``gcs``, imported only once credentials are needed), and the ``Authorization``
header of each request, its token refreshed as it expires."""

from __future__ import annotations

import json
import threading
from typing import Any

from bigarrays.errors import CredentialsError, MissingDependencyError
from bigarrays.stores.http import Pool
from bigarrays.stores.retry import Transient

_SCOPES = ["https://www.googleapis.com/auth/devstorage.read_write"]
_READ_SCOPES = ["https://www.googleapis.com/auth/devstorage.read_only"]


class Auth:
    """Adds an ``Authorization`` header; refreshes expiring google-auth credentials under a lock."""

    def __init__(self, credentials: Any, token: str | None, pool: Pool) -> None:
        self.credentials = credentials
        self.token = token
        self.pool = pool
        self.lock = threading.Lock()

    def headers(self, method: str, url: str, *, force_refresh: bool = False) -> dict[str, str]:
        if self.token is not None:
            return {"Authorization": f"Bearer {self.token}"}
        if self.credentials is None:
            return {}
        import google.auth.exceptions
        from google.auth.transport import urllib3 as transport

        headers: dict[str, str] = {}
        with self.lock:
            try:
                if force_refresh or not self.credentials.valid:
                    request: Any = transport.Request  # google-auth is untyped here
                    self.credentials.refresh(request(self.pool.manager))
                self.credentials.apply(headers)
            except google.auth.exceptions.TransportError as exc:
                raise Transient(f"getting a Google access token: {exc}") from exc
            except google.auth.exceptions.RefreshError as exc:
                raise CredentialsError(
                    f"cannot get a Google access token: {exc}; renew the credentials "
                    "(gcloud auth application-default login) or pass token= or "
                    "credentials_file=, or anonymous=True (--anon) for a public bucket"
                ) from None
        return headers


def load_credentials(url: str, credentials_file: str | None, read_only: bool) -> Any:
    """The google-auth credentials of a store at ``url``: from ``credentials_file``, else the
    application-default ones; read-only scopes for a read-only store."""
    try:
        import google.auth
        import google.auth.exceptions
    except ImportError:
        raise MissingDependencyError("google-auth", "gcs", "gs:// URLs") from None
    scopes = _READ_SCOPES if read_only else _SCOPES
    try:
        if credentials_file is not None:
            return _credentials_from_file(credentials_file, scopes)
        credentials, _ = google.auth.default(scopes=scopes)
    except google.auth.exceptions.DefaultCredentialsError as exc:
        source = credentials_file or "application-default credentials"
        raise CredentialsError(
            f"{url}: no usable Google credentials ({source}): {exc}. Run `gcloud auth "
            "application-default login`, set GOOGLE_APPLICATION_CREDENTIALS, pass token= or "
            "credentials_file=, or anonymous=True (--anon) for a public bucket"
        ) from None
    return credentials


def _credentials_from_file(path: str, scopes: list[str]) -> Any:
    """A service-account or authorized-user key file (``gcloud`` writes both kinds)."""
    try:
        with open(path, encoding="utf-8") as f:
            kind = json.load(f).get("type")
    except (OSError, ValueError, AttributeError) as exc:
        raise CredentialsError(f"cannot read the Google credentials file {path}: {exc}") from None
    try:
        if kind == "service_account":
            from google.oauth2 import service_account

            sa: Any = service_account.Credentials
            return sa.from_service_account_file(path, scopes=scopes)
        if kind == "authorized_user":
            from google.oauth2 import credentials

            user: Any = credentials.Credentials
            return user.from_authorized_user_file(path, scopes=scopes)
    except ValueError as exc:
        raise CredentialsError(f"the Google credentials file {path} is invalid: {exc}") from None
    raise CredentialsError(
        f"{path} holds {kind!r} credentials; credentials_file= takes a service-account or "
        "authorized-user file (point GOOGLE_APPLICATION_CREDENTIALS at other kinds)"
    )
