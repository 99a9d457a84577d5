"""``python -m gendiff``: the same as the ``gendiff`` command."""

from gendiff.cli.main import main

raise SystemExit(main())
