"""``python -m finetune_kit`` runs the ``finetune-kit`` command (also under torchrun)."""

import sys

from finetune_kit.cli import main

sys.exit(main())
