"""``python -m calico ...`` (also what ``torchrun -m calico ...`` runs)."""

import sys

from calico.cli import main

sys.exit(main())
