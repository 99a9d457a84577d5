"""``python -m gendiff``: the same as the ``gendiff`` command."""

from gendiff.cli import main

raise SystemExit(main())
