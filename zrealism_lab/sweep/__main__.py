"""`python -m zrealism_lab.sweep SPEC --out DIR`, also under `accelerate launch -m zrealism_lab.sweep ...`, where
every process runs its share of the jobs and the main process gathers the results."""
from __future__ import annotations

import sys

from ..cli.sweep import main

if __name__ == "__main__":
    sys.exit(main())
