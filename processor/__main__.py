"""`python -m processor <command>`: the processor's command line (`replay` for now)."""

from __future__ import annotations

import sys

from processor import replay

COMMANDS = {"replay": replay.main}


def main() -> int:
    """Dispatch to the named command."""
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(f"usage: python -m processor {{{','.join(COMMANDS)}}} ...", file=sys.stderr)
        return 2
    return COMMANDS[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
