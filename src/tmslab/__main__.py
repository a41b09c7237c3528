"""`python -m tmslab` and the `tms` console script."""

import sys


def main() -> int:
    """Load the CLI inside the interrupt guard: Ctrl-C while it loads exits 130 with one line, no traceback."""
    try:
        from tmslab.cli import main as cli_main
    except KeyboardInterrupt:
        print("interrupted: nothing was written; re-run the same command to start again", file=sys.stderr)
        return 130
    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
