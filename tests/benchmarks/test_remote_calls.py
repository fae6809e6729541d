"""The remote single calls scenario (``benchmarks.remote_calls``): every API over sftp, REST and S3 against
real servers on loopback (sshd, aiodepot's REST server, moto), straight and through the delay proxy."""

from __future__ import annotations

import re

from benchmarks import remote_calls


def test_every_api_runs_over_every_protocol_and_the_round_trips_are_counted() -> None:
    rows = remote_calls.run(calls=6, slow_calls=4)
    apis = ["aiodepot await Store", "aiodepot SyncStore", "aiodepot compat.borgstore", "borgstore"]
    expected = [
        (protocol, op, contender)
        for protocol, contenders in (("sftp", apis), ("rest", apis), ("s3", [*apis, "boto3", "obstore"]))
        for contender in contenders
        for op in ("load", "store")
    ]
    seen = [(row.scenario.split(",")[1].split()[0], row.operation, row.contender) for row in rows]
    assert sorted(seen) == sorted(expected)
    for row in rows:
        protocol = row.scenario.split(",")[1].split()[0]
        found = re.fullmatch(r"(\d+) µs/call, CPU (\d+) µs; (-?[\d.]+) round trips \(minimum (\d)\)", row.note)
        assert found is not None, row.note
        assert int(found[1]) > 0 and row.seconds > 0
        assert int(found[4]) == remote_calls.MINIMUM[(protocol, row.operation)]
        assert float(found[3]) > 0.5  # through the proxy every call waits for at least one round trip
