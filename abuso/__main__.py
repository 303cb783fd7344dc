"""``python -m abuso`` is ``abuso``."""

from .cli import main

main()
