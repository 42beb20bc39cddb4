"""Entry point of `python -m cli`."""

import sys

from cli.commands import main

sys.exit(main())
