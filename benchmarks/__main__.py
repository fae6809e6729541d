"""Run the benchmark scenarios side by side, print a table and write JSON.

``python -m benchmarks [--only NAME[,NAME...] ...] [--quick] [--count N] [--big-mib N] ... [--json PATH]``.
A size option (``--count``, ``--big-mib``, ``--size-mib``, …) sets that argument of every scenario run
that takes it, over the full or ``--quick`` value: ``--only s3 --count 400 --big-mib 48``.

The column "aiodepot x faster" says how many times faster aiodepot is than each contender on the same
operation (below 1: slower). Where a
scenario measures CPU (s3, rest), "client CPU" is this process's CPU time (every thread, ``getrusage``) and
"server CPU" the server process's (``/proc/<pid>/stat``), per operation or per MB; "bound" names the CPU that
limited the run: the machine's (client + server used nearly every core), the client's (its CPU time about
equals the wall time) or the server's.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from . import (
    azure,
    big_file,
    borg,
    emulated_latency,
    fsspec_read,
    ftp,
    gcs,
    http_pool,
    interrupt_latency,
    posixfs_small,
    remote_calls,
    rest,
    s3,
    server_load,
    sftp,
    single_calls,
    sync_overhead,
    writeback,
    zarr_chunks,
)
from .common import Row

SCENARIOS: dict[str, tuple[Callable[..., list[Row]], dict[str, int], dict[str, int]]] = {
    # name: (runner, full arguments, --quick arguments)
    "posixfs_small": (posixfs_small.run, {"count": 5000}, {"count": 1000}),
    "emulated_latency": (emulated_latency.run, {"count": 1000}, {"count": 100}),
    "big_file": (big_file.run, {"size_mib": 512}, {"size_mib": 64}),
    "sync_overhead": (sync_overhead.run, {"calls": 5000}, {"calls": 500}),
    "single_calls": (single_calls.run, {"calls": 5000}, {"calls": 500}),
    "sftp": (sftp.run, {"count": 1000, "big_mib": 256}, {"count": 100, "big_mib": 16}),
    "remote_calls": (remote_calls.run, {"calls": 500, "slow_calls": 60}, {"calls": 50, "slow_calls": 20}),
    "ftp": (ftp.run, {"count": 1000, "big_mib": 64}, {"count": 100, "big_mib": 8}),
    "rest": (rest.run, {"count": 2000, "big_mib": 256}, {"count": 200, "big_mib": 16}),
    "server_load": (server_load.run, {"clients": 32, "operations": 500}, {"clients": 8, "operations": 50}),
    "azure": (azure.run, {"count": 2000, "big_mib": 256}, {"count": 200, "big_mib": 16}),
    "s3": (s3.run, {"count": 2000, "big_mib": 256}, {"count": 200, "big_mib": 16}),
    "http_pool": (http_pool.run, {"count": 4000}, {"count": 400}),
    "gcs": (gcs.run, {"count": 2000, "big_mib": 256}, {"count": 200, "big_mib": 16}),
    "fsspec_read": (fsspec_read.run, {"size_mib": 256}, {"size_mib": 32}),
    "zarr_chunks": (zarr_chunks.run, {"chunks": 1000}, {"chunks": 200}),
    "borg": (borg.run, {"size_mib": 128}, {"size_mib": 16}),
    "writeback": (writeback.run, {"count": 10_000}, {"count": 500}),
    "interrupt_latency": (
        interrupt_latency.run,
        {"memory_items": 1_200_000, "file_items": 20_000},
        {"memory_items": 100_000, "file_items": 3_000},
    ),
}


def _speedups(rows: list[Row]) -> dict[int, float]:
    """For each non-aiodepot row: its time divided by aiodepot's time on the same scenario and operation."""
    ours: dict[tuple[str, str], float] = {}
    for row in rows:
        if row.contender.startswith("aiodepot"):
            ours.setdefault((row.scenario, row.operation), row.seconds)
    return {
        i: row.seconds / ours[(row.scenario, row.operation)]
        for i, row in enumerate(rows)
        if not row.contender.startswith("aiodepot") and (row.scenario, row.operation) in ours
    }


SIZES = {
    "count": "number of small values",
    "big_mib": "size of the big value in MiB",
    "size_mib": "size of the value or file in MiB",
    "calls": "calls per measured loop of single calls",
    "slow_calls": "calls per loop on the slow (emulated) link",
    "chunks": "number of zarr chunks",
    "clients": "concurrent clients",
    "operations": "operations per client",
    "memory_items": "items of the interrupted bulk call on memory://",
    "file_items": "items of the interrupted bulk call on file://",
}
"""What each size argument of the scenarios means, for --help."""


def _size_options() -> dict[str, list[str]]:
    """Each size argument of the scenarios (``big_mib``) and the scenarios that take it."""
    takers: dict[str, list[str]] = {}
    for name, (_, full, _) in SCENARIOS.items():
        for argument in full:
            takers.setdefault(argument, []).append(name)
    return dict(sorted(takers.items()))


def _arguments(name: str, quick: bool, sizes: dict[str, int]) -> dict[str, int]:
    """The arguments of scenario ``name``: full or quick, with the sizes given on the command line."""
    _, full, small = SCENARIOS[name]
    arguments = dict(small if quick else full)
    arguments.update({argument: value for argument, value in sizes.items() if argument in arguments})
    return arguments


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: list[str] | None = None) -> None:
    """Run the scenarios the command line asks for."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--only",
        nargs="*",
        default=[],
        metavar="NAME[,NAME...]",
        help=f"scenarios to run (default: all): {', '.join(sorted(SCENARIOS))}",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/latest.json"), help="output file")
    takers = _size_options()
    sizes = parser.add_argument_group("sizes", "set a scenario argument (default: the full or --quick value)")
    for argument, names in takers.items():
        defaults = ", ".join(f"{name} {SCENARIOS[name][1][argument]}" for name in names)
        sizes.add_argument(
            "--" + argument.replace("_", "-"),
            type=_positive,
            metavar="N",
            help=f"{SIZES.get(argument, argument)} (full runs: {defaults})",
        )
    args = parser.parse_args(argv)
    only = [name for value in args.only for name in value.split(",") if name]
    unknown = sorted(set(only) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(unknown)} (choose from {', '.join(sorted(SCENARIOS))})")
    chosen = only or list(SCENARIOS)
    given = {argument: getattr(args, argument) for argument in takers if getattr(args, argument) is not None}
    for argument in given:
        if not set(takers[argument]) & set(chosen):
            option = "--" + argument.replace("_", "-")
            parser.error(f"{option} sets no scenario run here: it is for {', '.join(takers[argument])}")

    rows: list[Row] = []
    for name in chosen:
        os.sync()  # the last scenario's dirty pages must not be written back during this one
        rows.extend(SCENARIOS[name][0](**_arguments(name, args.quick, given)))

    speedups = _speedups(rows)
    with_cpu = any(row.client_cpu is not None for row in rows)
    columns = ["scenario", "operation", "contender", "seconds", "note", "aiodepot x faster"]
    if with_cpu:
        columns += ["client CPU", "server CPU", "bound"]
    right = {"seconds", "aiodepot x faster", "client CPU", "server CPU"}
    table = Table(title="aiodepot benchmarks")
    for column in columns:
        table.add_column(column, justify="right" if column in right else "left")
    for i, row in enumerate(rows):
        speedup = f"{speedups[i]:.2f}" if i in speedups else ""
        cells = [row.scenario, row.operation, row.contender, f"{row.seconds:.3f}", row.note, speedup]
        if with_cpu:
            cells += [row.per_unit(row.client_cpu), row.per_unit(row.server_cpu), row.bound()]
        table.add_row(*cells)
    Console(width=220 if with_cpu else 160).print(table)

    args.json.parent.mkdir(parents=True, exist_ok=True)
    meta = {"time": time.time(), "python": platform.python_version(), "machine": platform.machine()}
    payload = {
        "meta": meta,
        "rows": [dataclasses.asdict(row) | {"aiodepot_speedup": speedups.get(i)} for i, row in enumerate(rows)],
    }
    args.json.write_text(json.dumps(payload, indent=2))
    print(f"results written to {args.json}")


if __name__ == "__main__":
    main()
