"""``python -m aiodepot.server``."""

from .run import main

main()
