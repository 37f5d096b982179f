"""`python -m processor <command>`: the processor's command line (`replay`, `worker`)."""

from __future__ import annotations

import sys

from processor import replay


def _worker(argv: list[str]) -> int:
    from processor import agent  # Faust is only imported by the command that needs it

    return agent.main(argv)


COMMANDS = {"replay": replay.main, "worker": _worker}


def main() -> int:
    """Dispatch to the named command."""
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(f"usage: python -m processor {{{','.join(COMMANDS)}}} ...", file=sys.stderr)
        return 2
    return COMMANDS[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
