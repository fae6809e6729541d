"""``python -m aiodepot`` runs the command line."""

from .cli import main

main()
