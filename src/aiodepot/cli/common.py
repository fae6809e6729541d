"""What the store commands share: store options, opening a store, errors and exit codes, output helpers.

Every store command takes a store URL as its first argument, then item names or namespaces as further
arguments (``aiodepot cat file:///srv/depot data/0123abcd``). A store URL never contains an item name,
since where a URL's path ends and a name begins differs between backends. A local path (starting with
``/``, ``./``, ``../`` or ``~``) may be given instead of a ``file://`` URL.

Exit codes: 0 success, 1 a failed operation (missing item, store error, OS error), 2 bad usage (bad
option, bad URL, bad name), 130 interrupted (Ctrl-C), 141 the reader of stdout went away.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import errno
import functools
import json
import os
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ParamSpec, TypeVar

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from ..backends import normalize_url, without_secrets
from ..errors import (
    BackendURLInvalid,
    ConnectionLost,
    InvalidName,
    ObjectNotFound,
    PermissionDenied,
    StoreCorrupt,
    StoreError,
    StoreExists,
    StoreNotFound,
)
from ..names import ROOTNS, validate_namespace
from ..store import Store
from ..transfer import Progress as TransferProgress
from ..transfer import ProgressCallback

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_PIPE",
    "EXIT_USAGE",
    "ByteSize",
    "CliError",
    "ProgressDisplay",
    "StoreOptions",
    "about_store",
    "display_url",
    "dst_store_options",
    "format_size",
    "format_time",
    "is_broken_pipe",
    "json_dumps",
    "namespace_label",
    "open_store",
    "report",
    "silence_stdout",
    "store_options",
    "store_url",
    "translate_error",
    "url_argument",
    "wants_progress",
    "warn_strays",
]

P = ParamSpec("P")
T = TypeVar("T")

EXIT_FAILURE = 1
"""An operation failed: a missing item, a store error, an OS error."""
EXIT_USAGE = 2
"""Bad usage: an unknown option, a bad store URL, an invalid name (click's own code for usage errors)."""
EXIT_INTERRUPTED = 130
"""Interrupted by Ctrl-C (128 + SIGINT), as shells report it."""
EXIT_PIPE = 141
"""The reader of stdout went away (128 + SIGPIPE), e.g. ``aiodepot cat … | head``."""


class CliError(click.ClickException):
    """An error to report as one line on stderr (``aiodepot: message``) and exit with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file: IO[Any] | None = None) -> None:
        """Print ``aiodepot: message`` to stderr."""
        report(self.format_message(), file=file)


def report(message: str, *, file: IO[Any] | None = None) -> None:
    """Print ``aiodepot: message`` on stderr (for errors that do not end the command at once).

    Passwords in store URLs are masked: backends quote the URL they could not parse. A message of several
    lines (a server's last words) is joined into one.
    """
    one_line = "; ".join(line.strip() for line in message.splitlines() if line.strip())
    click.echo(f"aiodepot: {display_url(one_line)}", err=file is None, file=file)


def warn_strays(strays: Sequence[str]) -> None:
    """Warn about files the walk skipped because they lie outside the configured nesting levels."""
    if strays:
        report(
            f"warning: skipped {len(strays)} item(s) outside the configured nesting levels, e.g. "
            f"{strays[0]} (give --levels to match how the store was written)"
        )


def translate_error(exc: BaseException) -> CliError:
    """The one-line message and exit code for an error a command let through.

    A failure of the store (not a missing item or a bad name) names its URL where the command had one
    store open.
    """
    if isinstance(exc, BackendURLInvalid | InvalidName):
        return CliError(str(exc), EXIT_USAGE)
    if isinstance(exc, ObjectNotFound):
        return CliError(f"{exc.name}: no such item")
    url = getattr(exc, "aiodepot_url", None)
    if isinstance(exc, StoreError) and exc.store is not None:
        url = exc.store  # the Store it came through says
    if isinstance(url, str):
        error = translate_error(_without_url(exc))
        shown = display_url(url)
        if shown not in error.message:
            error.message = f"{shown}: {error.message}"
        return error
    if isinstance(exc, StoreError):  # MissingDependency too: its message names the extra to install
        return CliError(str(exc))
    if isinstance(exc, OSError):
        if exc.filename is not None and exc.strerror:
            return CliError(f"{exc.filename}: {exc.strerror}")
        return CliError(exc.strerror or str(exc) or type(exc).__name__)
    return CliError(str(exc) or type(exc).__name__)


def _without_url(exc: BaseException) -> BaseException:
    with contextlib.suppress(AttributeError):
        del exc.aiodepot_url  # type: ignore[attr-defined]
    if isinstance(exc, StoreError):
        exc.store = None
    return exc


def silence_stdout() -> None:
    """Point stdout at /dev/null, so that flushing it at exit does not raise again after a broken pipe."""
    stream = click.get_binary_stream("stdout")
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)


# store URLs ------------------------------------------------------------------------------------------------


def display_url(url: str) -> str:
    """``url`` (or a message naming store URLs) with any password, secret key or token replaced by ``***``,
    for messages (the hiding of `aiodepot.backends.without_secrets`, as in `Store.url`)."""
    return without_secrets(url)


def store_url(value: str) -> str:
    """A store URL from the command line: URLs pass through, local paths become ``file://`` URLs."""
    return normalize_url(value)


def _store_url_callback(ctx: click.Context, param: click.Parameter, value: str) -> str:
    return store_url(value)


def url_argument(name: str = "url", metavar: str = "URL") -> Callable[[Callable[P, T]], Callable[P, T]]:
    """A store URL argument (local paths are turned into ``file://`` URLs)."""
    return click.argument(name, metavar=metavar, callback=_store_url_callback)


# store options ---------------------------------------------------------------------------------------------


def _parse_levels(entries: tuple[str, ...], option: str) -> dict[str, dict[str, list[int]]]:
    config: dict[str, dict[str, list[int]]] = {}
    for entry in entries:
        for item in entry.split():  # the environment variable holds several, separated by blanks
            namespace, sep, levels = item.partition("=")
            try:
                if not sep:
                    raise ValueError("expected NAMESPACE=L[,L]")
                bare = validate_namespace(namespace.strip("/"))
                values = [int(level) for level in levels.split(",")]
            except (ValueError, InvalidName) as exc:
                raise click.BadParameter(f"{item!r}: {exc}", param_hint=option) from None
            config[bare + "/" if bare else ROOTNS] = {"levels": values}
    return config


def _parse_config(value: str | None, option: str) -> dict[str, Any]:
    if value is None:
        return {}
    text = value
    if not value.lstrip().startswith("{"):
        try:
            text = Path(value).read_text()
        except OSError as exc:
            raise click.BadParameter(f"{value}: {exc.strerror}", param_hint=option) from None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint=option) from None
    if not isinstance(config, dict):
        raise click.BadParameter('expected a JSON object like {"data/": {"levels": [2]}}', param_hint=option)
    return {key.rstrip("/") + "/" if key.strip("/") else ROOTNS: spec for key, spec in config.items()}


class StoreOptions:
    """How to open the stores of one command: namespace nesting and concurrency.

    Args:
        config: namespace → ``{"levels": [...]}``, as `aiodepot.Store` takes it; the root namespace is
            added flat (``{"": {"levels": [0]}}``) unless it is configured.
        concurrency: operations in flight in bulk calls (None: what the backend prefers).
        given: the user gave the config; without it, stores open with the levels they remember (or flat).
    """

    __slots__ = ("concurrency", "config", "given")

    def __init__(self, config: Mapping[str, Mapping[str, Any]], concurrency: int | None, *, given: bool = True) -> None:
        merged = dict(config)
        merged.setdefault(ROOTNS, {"levels": [0]})
        self.config = merged
        self.concurrency = concurrency
        self.given = given
        """False when neither --config nor --levels was given: a store's remembered levels apply."""

    @classmethod
    def parse(
        cls,
        config: str | None,
        levels: tuple[str, ...],
        concurrency: int | None,
        *,
        prefix: str = "",
        base: StoreOptions | None = None,
    ) -> StoreOptions:
        """Build the options from ``--config`` (a JSON file or JSON text) and ``--levels`` entries.

        With ``base``, what is not given is taken from there (``--dst-levels`` falls back to ``--levels``).
        """
        if base is not None and config is None and not levels:
            return cls(base.config, concurrency, given=base.given)
        merged = _parse_config(config, f"--{prefix}config")
        merged.update(_parse_levels(levels, f"--{prefix}levels"))
        return cls(merged, concurrency, given=config is not None or bool(levels))

    def store(self, url: str, **backend_options: Any) -> Store:
        """A (closed) store for ``url``; a bad URL or configuration is a usage error. Without --config or
        --levels the store opens with the nesting levels it remembers."""
        try:
            return Store(
                url,
                config=self.config if self.given else None,
                max_concurrency=self.concurrency,
                backend_options=backend_options or None,
            )
        except (BackendURLInvalid, InvalidName, ValueError, TypeError) as exc:
            raise CliError(f"{display_url(url)}: {exc}", EXIT_USAGE) from exc


def store_options(func: Callable[P, T]) -> Callable[..., T]:
    """Add ``--config``, ``--levels`` and ``-c/--concurrency`` to a command; it gets ``options: StoreOptions``."""

    @functools.wraps(func)
    def wrapper(*args: Any, config: str | None, levels: tuple[str, ...], concurrency: int | None, **kwargs: Any) -> T:
        kwargs["options"] = StoreOptions.parse(config, levels, concurrency)
        return func(*args, **kwargs)

    decorators = (
        click.option(
            "-c",
            "--concurrency",
            type=click.IntRange(min=1),
            metavar="N",
            default=None,
            help="Operations in flight in bulk calls [default: the backend's].",
        ),
        click.option(
            "--levels",
            multiple=True,
            metavar="NAMESPACE=L[,L]",
            envvar="AIODEPOT_LEVELS",
            help="Nesting levels of a namespace, e.g. data=2 (repeatable; env AIODEPOT_LEVELS).",
        ),
        click.option(
            "--config",
            metavar="FILE|JSON",
            envvar="AIODEPOT_CONFIG",
            help='Namespace config as JSON (a file, or inline: \'{"data/": {"levels": [2]}}\'; env AIODEPOT_CONFIG).',
        ),
    )
    command: Callable[..., T] = wrapper
    for decorator in decorators:
        command = decorator(command)
    return command


def dst_store_options(func: Callable[P, T]) -> Callable[..., T]:
    """Add ``--dst-config`` and ``--dst-levels`` (default: like the source); the command gets ``dst_options``.

    Apply below [`store_options`][aiodepot.cli.common.store_options], which provides the source options.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, dst_config: str | None, dst_levels: tuple[str, ...], **kwargs: Any) -> T:
        base: StoreOptions = kwargs["options"]
        kwargs["dst_options"] = StoreOptions.parse(dst_config, dst_levels, base.concurrency, prefix="dst-", base=base)
        return func(*args, **kwargs)

    command: Callable[..., T] = click.option(
        "--dst-levels",
        multiple=True,
        metavar="NAMESPACE=L[,L]",
        help="Nesting levels at the destination [default: as --levels].",
    )(wrapper)
    return click.option("--dst-config", metavar="FILE|JSON", help="Namespace config of the destination.")(command)


def about_store(url: str, exc: BaseException, *, exit_code: int = EXIT_FAILURE) -> CliError:
    """The one-line error for a failure of the store at ``url`` (opening, creating): it names the URL
    (password masked) and, where there is one, what to do."""
    shown = display_url(url)
    message = display_url(str(exc)) or type(exc).__name__
    message = message.removeprefix("the store: ")  # the URL in front names it
    if isinstance(exc, StoreNotFound):
        if url.startswith("memory:"):
            message = "no such store: a memory:// store lives only inside the process that made it"
        else:
            message = f"no such store (create one with: aiodepot create {shown})"
    elif isinstance(exc, StoreCorrupt):
        message += " (check the URL)"
    elif isinstance(exc, PermissionDenied | PermissionError):
        message += " (check the permissions of the store's location, or the credentials)"
    elif isinstance(exc, ConnectionLost | ConnectionError):
        message += " (is the server running and the address right?)"
    if isinstance(exc, BackendURLInvalid | InvalidName):
        exit_code = EXIT_USAGE
    return CliError(message if message.startswith(shown) else f"{shown}: {message}", exit_code)


@contextlib.asynccontextmanager
async def open_store(url: str, options: StoreOptions, *, create: bool = False) -> AsyncIterator[Store]:
    """Open the store at ``url``; a missing store is an error, or with ``create`` is created first.

    A failure to open names the URL (password masked) and says what to do.
    """
    store = options.store(url)
    try:
        try:
            await store.open()
        except StoreNotFound:
            if not create:
                raise
            try:
                await store.create()
            except StoreExists:
                pass  # created meanwhile by someone else
            await store.open()
    except (StoreError, OSError) as exc:
        raise about_store(url, exc) from exc
    _OPEN_STORES.append(url)
    try:
        yield store
    except (StoreError, OSError) as exc:
        if not hasattr(exc, "aiodepot_url"):  # the innermost store sees it first; with two, which one is unsure
            exc.aiodepot_url = url if len(_OPEN_STORES) == 1 else None  # type: ignore[union-attr]
        raise
    finally:
        _OPEN_STORES.remove(url)
        await store.close()


_OPEN_STORES: list[str] = []
"""The URLs of the stores this command has open (an error of the only one is reported with its URL)."""


# output ------------------------------------------------------------------------------------------------------

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def format_size(n: float, *, human: bool = False) -> str:
    """``n`` bytes as an integer, or with ``human`` in binary units (``1.5 MiB``)."""
    if not human:
        return str(int(n))
    for unit in _UNITS:
        if abs(n) < 1024 or unit == _UNITS[-1]:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def format_time(timestamp: float) -> str:
    """A UNIX time as local ``YYYY-MM-DD HH:MM:SS`` (``-`` when unknown)."""
    if not timestamp:
        return "-" + " " * 18
    return datetime.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


def namespace_label(namespace: str) -> str:
    """How a namespace is shown in tables: its name, or ``/`` for the root namespace."""
    return namespace or "/"


def json_dumps(value: object) -> str:
    """JSON as the commands print it: indented, keys in the order given, non-ASCII characters as they are."""
    return json.dumps(value, ensure_ascii=False, indent=2)


if TYPE_CHECKING:
    _IntParamType = click.ParamType[int]
else:  # click < 8.2 has no generic ParamType
    _IntParamType = click.ParamType


class ByteSize(_IntParamType):
    """A byte count: ``4096``, ``4k``, ``4KiB``, ``16M``, ``1G`` (binary units); negative where allowed."""

    name = "size"
    _PATTERN = re.compile(r"(?P<sign>-?)(?P<number>\d+)\s*(?P<unit>[kmgt]?)(?:i?b)?", re.IGNORECASE)

    def __init__(self, *, allow_negative: bool = False) -> None:
        self.allow_negative = allow_negative

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        """Parse the value (an int passes through)."""
        if isinstance(value, int):
            number = value
        else:
            match = self._PATTERN.fullmatch(str(value).strip())
            if match is None:
                self.fail(f"{value!r} is not a byte count (e.g. 4096, 64k, 16M)", param, ctx)
            scale = 1024 ** ("", "k", "m", "g", "t").index(match["unit"].lower())
            number = int(match["number"]) * scale * (-1 if match["sign"] else 1)
        if number < 0 and not self.allow_negative:
            self.fail(f"{value!r} must not be negative", param, ctx)
        return number


class ProgressDisplay:
    """A rich progress bar on stderr for a transfer, or nothing at all when disabled.

    Args:
        enabled: show the bar (commands enable it when stderr is a terminal, or on ``--progress``).
        description: the label left of the bar.
        items_total: items to move.
        bytes_total: bytes to move.
    """

    def __init__(self, *, enabled: bool, description: str, items_total: int, bytes_total: int) -> None:
        self._progress: Progress | None = None
        self._task = TaskID(0)
        self._items_base = 0
        self._bytes_base = 0
        if enabled:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(binary_units=True),
                TransferSpeedColumn(),
                TextColumn("{task.fields[items]}/{task.fields[items_total]} items"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._task = self._progress.add_task(
                description, total=bytes_total, items=0, items_total=items_total, start=True
            )

    @contextlib.asynccontextmanager
    async def shown(self) -> AsyncIterator[ProgressDisplay]:
        """Show the bar for the duration of the block (drawing it is terminal I/O: done off the loop)."""
        progress = self._progress
        if progress is None:
            yield self
            return
        await asyncio.to_thread(progress.start)
        try:
            yield self
        finally:
            await asyncio.to_thread(progress.stop)

    def callback(self) -> ProgressCallback | None:
        """A callback for one bulk call; its counts add to what earlier calls moved."""
        if self._progress is None:
            return None
        progress, task = self._progress, self._task
        items_base, bytes_base = self._items_base, self._bytes_base

        def update(state: TransferProgress) -> None:
            progress.update(task, completed=bytes_base + state.bytes_done, items=items_base + state.items_done)

        return update

    def advance(self, items: int, nbytes: int) -> None:
        """Count a finished bulk call (or a single item) towards the totals."""
        self._items_base += items
        self._bytes_base += nbytes
        if self._progress is not None:
            self._progress.update(self._task, completed=self._bytes_base, items=self._items_base)


def wants_progress(flag: bool | None) -> bool:
    """Whether to show a progress bar: as ``--progress/--no-progress`` says, else when stderr is a terminal."""
    if flag is not None:
        return flag
    return click.get_text_stream("stderr").isatty()


def is_broken_pipe(exc: BaseException) -> bool:
    """True for the error of writing to a pipe whose reader has gone."""
    return isinstance(exc, BrokenPipeError) or (isinstance(exc, OSError) and exc.errno == errno.EPIPE)
