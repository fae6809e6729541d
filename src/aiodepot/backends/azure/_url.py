"""``azure://`` URLs and connection strings: which account, container and path, and how to sign in."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
import re
from urllib.parse import parse_qs, unquote

from ...errors import BackendURLInvalid
from .. import without_secrets

__all__ = ["CONNECTION_STRING_VARIABLE", "Account", "parse_connection_string", "parse_url"]

CONNECTION_STRING_VARIABLE = "AZURE_STORAGE_CONNECTION_STRING"
"""The environment variable with a connection string, used when the URL names no account."""

_URL = re.compile(
    r"""
    azure://
    (?:(?P<account>[^:@/?]+)(?::(?P<key>[^@?]*))?@)?   # ACCOUNT[:KEY]@ (a base64 key may hold '/' and '+')
    (?P<container>[^/?@]+)
    /(?P<path>[^?]+)
    (?:\?(?P<query>.*))?
    """,
    re.VERBOSE,
)
_CONTAINER = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}|\$root")


@dataclasses.dataclass(frozen=True, slots=True)
class Account:
    """Where the blob service is and how to sign in to it.

    Args:
        name: the storage account.
        endpoint: the blob service's URL (``https://ACCOUNT.blob.core.windows.net``, or an emulator's
            ``http://127.0.0.1:10000/ACCOUNT``).
        key: the account key (base64); it signs requests and SAS URLs.
        sas: a shared access signature instead of the key (it signs requests only: no ``url_for``).
    """

    name: str
    endpoint: str
    key: str | None = dataclasses.field(default=None, repr=False)
    sas: str | None = dataclasses.field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.key is not None:
            try:
                base64.b64decode(self.key, validate=True)
            except binascii.Error:
                raise BackendURLInvalid(f"the key of account {self.name!r} is not base64") from None
        if not self.endpoint.startswith(("http://", "https://")):
            raise BackendURLInvalid(f"the endpoint must be http:// or https://: {self.endpoint!r}")

    @classmethod
    def public(cls, name: str, key: str | None, endpoint: str | None = None) -> Account:
        """The account ``name`` on Azure's public cloud (or at ``endpoint``)."""
        return cls(name, (endpoint or f"https://{name}.blob.core.windows.net").rstrip("/"), key)

    @property
    def credential(self) -> dict[str, str] | str | None:
        """What the SDK takes as credential (None: anonymous)."""
        if self.key is not None:
            return {"account_name": self.name, "account_key": self.key}
        return self.sas


def parse_connection_string(text: str) -> Account:
    """The account of a connection string (``AccountName=…;AccountKey=…;BlobEndpoint=…`` and its variants)."""
    fields: dict[str, str] = {}
    for part in text.strip().strip(";").split(";"):
        field, sep, value = part.partition("=")
        if not sep:
            raise BackendURLInvalid(f"not a connection string (no '=' in a field): {field[:20]!r}…")
        fields[field.strip().lower()] = value.strip()
    if fields.get("usedevelopmentstorage", "").lower() == "true":
        fields.setdefault("accountname", "devstoreaccount1")
        fields.setdefault("accountkey", DEVELOPMENT_KEY)
        fields.setdefault("blobendpoint", "http://127.0.0.1:10000/devstoreaccount1")
    name = fields.get("accountname")
    endpoint = fields.get("blobendpoint")
    if endpoint is None and name is not None:
        protocol = fields.get("defaultendpointsprotocol", "https")
        suffix = fields.get("endpointsuffix", "core.windows.net")
        endpoint = f"{protocol}://{name}.blob.{suffix}"
    if endpoint is None:
        raise BackendURLInvalid("the connection string names neither AccountName nor BlobEndpoint")
    if name is None:  # an emulator's endpoint ends in the account; a cloud's starts with it
        tail = endpoint.rstrip("/").rpartition("/")[2]
        name = tail if ":" not in tail and "." not in tail else tail.partition(".")[0].rpartition("/")[2]
    return Account(name, endpoint.rstrip("/"), fields.get("accountkey"), fields.get("sharedaccesssignature"))


DEVELOPMENT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
"""The published key of the emulators' account ``devstoreaccount1`` (Azurite's default)."""


def parse_url(url: str) -> tuple[str, str, Account]:
    """Container, path and account of ``azure://[ACCOUNT[:KEY]@]CONTAINER/PATH[?endpoint=URL]``.

    Without ``ACCOUNT@`` the account comes from ``$AZURE_STORAGE_CONNECTION_STRING``. The key may be
    percent-encoded (it must be if it holds a ``?`` or ``@``, which base64 never does).
    """
    match = _URL.fullmatch(url)
    if match is None:
        raise BackendURLInvalid(
            f"not an azure: URL (azure://ACCOUNT:KEY@CONTAINER/PATH[?endpoint=…]): {without_secrets(url)!r}"
        )
    container, path = match["container"], unquote(match["path"])
    if not _CONTAINER.fullmatch(container):
        raise BackendURLInvalid(
            f"invalid container name {container!r} (3-63 characters: lowercase letters, digits, single dashes)"
        )
    query = parse_qs(match["query"] or "", keep_blank_values=True, strict_parsing=False)
    unknown = sorted(set(query) - {"endpoint"})
    if unknown:
        shown = without_secrets(url)
        raise BackendURLInvalid(f"azure: URLs take only ?endpoint=…, not {', '.join(unknown)}: {shown!r}")
    endpoint = query["endpoint"][-1] if "endpoint" in query else None
    if match["account"] is not None:
        key = match["key"]
        return container, path, Account.public(unquote(match["account"]), unquote(key) if key else None, endpoint)
    text = os.environ.get(CONNECTION_STRING_VARIABLE)
    if not text:
        raise BackendURLInvalid(
            f"the azure: URL names no account (azure://ACCOUNT:KEY@…) and ${CONNECTION_STRING_VARIABLE} is not set"
        )
    account = parse_connection_string(text)
    if endpoint is not None:
        account = dataclasses.replace(account, endpoint=endpoint.rstrip("/"))
    return container, path, account
