"""Allow ``python -m tetune``."""

import sys

from tetune.cli import main

if __name__ == "__main__":
    sys.exit(main())
