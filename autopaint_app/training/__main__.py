"""``python -m autopaint_app.training --config run.json [--resume]`` (see ``train.py``)."""

import sys

from autopaint_app.training.train import main

sys.exit(main())
