"""``python -m flexbench.serve [--host H] [--port N]``: the same as ``flexbench serve``."""

import sys

from flexbench.cli import main

sys.exit(main(["serve", *sys.argv[1:]]))
