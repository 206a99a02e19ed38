"""``python -m cnnlab.bench``."""

import sys

from cnnlab.bench._runner import main

sys.exit(main())
