import sys

from gendiff.cli import main

sys.exit(main())
