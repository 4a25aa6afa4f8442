"""`python -m runtime …` (from a copied folder) and `python -m mdx.runtime …`."""

import sys

from .cli import main

sys.exit(main())
