"""``python -m archspec``: the command line (torchrun starts the training processes so)."""

from .cli import main

main()
