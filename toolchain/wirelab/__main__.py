"""`python -m wirelab` runs the CLI."""

from .cli import main

main()
