"""Start the AutoPaint Studio desktop app."""

import sys

from autopaint_app.gui.app import main

if __name__ == "__main__":
    sys.exit(main())
