"""``python -m spinereg``: the command line."""

from spinereg.cli import main

main()
