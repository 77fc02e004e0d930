"""``python -m gdcore <command>``: ``warmup`` compiles the kernels for this machine
(:mod:`gdcore.warmup`); ``aot`` builds the main ones into C extensions
(:mod:`gdcore.aot_build`)."""

import sys

COMMANDS = ("warmup", "aot")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: python -m gdcore {{{','.join(COMMANDS)}}} [options]", file=sys.stderr)
        return 2
    if argv[0] == "aot":
        from . import aot_build

        return aot_build.main(argv[1:])
    from . import warmup

    return warmup.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
