"""``python -m gdcore <command>``: ``warmup`` compiles the kernels for this machine
(:mod:`gdcore.warmup`)."""

import sys

COMMANDS = ("warmup",)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: python -m gdcore {{{','.join(COMMANDS)}}} [options]", file=sys.stderr)
        return 2
    from . import warmup

    return warmup.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
