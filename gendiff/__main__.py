"""``python -m gendiff``: the command line."""

from gendiff.cli import main

raise SystemExit(main())
