"""Who may use the server: one fixed user, or the users of an htpasswd file (bcrypt)."""

from __future__ import annotations

import abc
import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import os
import secrets

__all__ = ["Authenticator", "HtpasswdAuth", "PasswordAuth", "parse_basic"]

logger = logging.getLogger("aiodepot.server")


def parse_basic(header: str | None) -> tuple[str, str] | None:
    """``(username, password)`` from an ``Authorization: Basic …`` header, or None if it is not one."""
    if not header:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    username, sep, password = decoded.partition(":")
    return (username, password) if sep else None


class Authenticator(abc.ABC):
    """Decides whether a request's credentials are good; knows nothing else of the request."""

    @abc.abstractmethod
    async def authenticate(self, header: str | None) -> str | None:
        """The user name for a good ``Authorization`` header, else None."""

    def reload(self) -> None:  # noqa: B027 - most authenticators have nothing to reload
        """Re-read the credentials (on SIGHUP)."""


class PasswordAuth(Authenticator):
    """One user and password, compared in constant time."""

    def __init__(self, username: str, password: str) -> None:
        if not username or not password:
            raise ValueError("a username and a password are both needed")
        self._username = username.encode()
        self._password = password.encode()

    async def authenticate(self, header: str | None) -> str | None:
        """Check the header against the one user."""
        credentials = parse_basic(header)
        if credentials is None:
            return None
        user_ok = secrets.compare_digest(credentials[0].encode(), self._username)
        password_ok = secrets.compare_digest(credentials[1].encode(), self._password)
        return credentials[0] if user_ok and password_ok else None


_BCRYPT_ALPHABET = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_BCRYPT_MAX_PASSWORD = 72
"""bcrypt reads at most this many bytes of a password (bcrypt >= 5 refuses longer ones)."""


def _dummy_hash(cost: int) -> bytes:
    """A well-formed bcrypt hash of cost ``cost`` that no password matches (random salt and digest)."""
    salt = "".join(secrets.choice(_BCRYPT_ALPHABET) for _ in range(21)) + secrets.choice(".Oeu")
    digest = "".join(secrets.choice(_BCRYPT_ALPHABET) for _ in range(31))
    return f"$2b${cost:02d}${salt}{digest}".encode()


def _cost(hashed: bytes) -> int:
    try:
        return int(hashed.split(b"$")[2])
    except (IndexError, ValueError):
        return 12


class HtpasswdAuth(Authenticator):
    """The users of an htpasswd file with bcrypt hashes (``htpasswd -B``), re-read by :meth:`reload`.

    bcrypt is slow on purpose, so a check runs in a thread. Every refusal costs one bcrypt check of the
    users' cost: an unknown user is checked against a dummy hash, and a password longer than bcrypt takes
    (72 bytes) is refused after one — so timing tells no user names. A password bcrypt accepted is
    remembered (as a keyed hash, never the password) until the file is reloaded; the memory only ever
    confirms that password, a different one still goes through bcrypt.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._hashes: dict[str, bytes] = {}
        self._verified: dict[str, bytes] = {}
        self._dummy = _dummy_hash(12)
        self._key = secrets.token_bytes(32)
        self.reload()

    def reload(self) -> None:
        """Re-read the file; a file that cannot be read keeps the users loaded before."""
        try:
            with open(self.path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except OSError as exc:
            if not self._hashes:
                raise ValueError(f"cannot read the htpasswd file: {exc.strerror}") from None
            logger.error("keeping the old users: cannot read the htpasswd file: %s", exc.strerror)
            return
        hashes: dict[str, bytes] = {}
        for number, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            user, sep, hashed = line.partition(":")
            if not sep or not hashed.startswith(("$2y$", "$2b$", "$2a$")):
                logger.warning("htpasswd line %d: not a user with a bcrypt hash, ignored", number)
                continue
            hashes[user] = hashed.encode()
        self._hashes = hashes
        self._verified = {}
        # the dummy costs what a real user's check costs (the highest cost in the file)
        self._dummy = _dummy_hash(max((_cost(hashed) for hashed in hashes.values()), default=12))
        logger.info("loaded %d users from the htpasswd file", len(hashes))

    async def authenticate(self, header: str | None) -> str | None:
        """Check the header against the file's users."""
        credentials = parse_basic(header)
        if credentials is None:
            return None
        user, password = credentials
        secret = password.encode()
        hashed = self._hashes.get(user)
        token = hmac.new(self._key, secret, hashlib.sha256).digest()
        known = self._verified.get(user) if hashed is not None else None
        if known is not None and secrets.compare_digest(known, token):
            return user  # the password bcrypt accepted before: confirmed without bcrypt
        usable = hashed is not None and len(secret) <= _BCRYPT_MAX_PASSWORD
        accepted = await asyncio.to_thread(_checkpw, secret if usable else b"-", hashed if usable else self._dummy)
        if not (accepted and usable):
            return None
        if self._hashes.get(user) is hashed:  # not reloaded meanwhile
            self._verified[user] = token
        return user


def _checkpw(password: bytes, hashed: bytes | None) -> bool:
    import bcrypt

    assert hashed is not None
    try:
        return bool(bcrypt.checkpw(password, hashed))
    except ValueError:  # a damaged hash in the file: nobody logs in with it
        return False
