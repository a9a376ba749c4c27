"""``python -m roost.cli``."""

from roost.cli import main

main()
