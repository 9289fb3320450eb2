"""``python -m zrealism_lab.bench --child TASK``: one measurement in a fresh interpreter."""
import sys

from .child import child_main

sys.exit(child_main())
