"""GUI entry point. The desktop window is being built (issue 5); until then say so plainly."""

import sys


def main() -> int:
    print(
        "AutoPaint Studio desktop app: coming soon (issue 5).\n"
        "Everything it will do is available now through `autopaint-cli --help`."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
