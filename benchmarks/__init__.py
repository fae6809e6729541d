"""aiodepot's benchmark runner: ``python -m benchmarks`` (or ``nox -s bench``)."""
