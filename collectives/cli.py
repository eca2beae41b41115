"""The ``collectives`` command: info, bench, and the topology, planning and what-if tools."""

from __future__ import annotations

import argparse
import os
import sys

from . import __version__


def _info(args) -> int:
    from .info import collect, format_info

    data = collect()
    if args.json:
        import json

        print(json.dumps(data, indent=2))
    else:
        print(format_info(data))
    return 0


def _bench(args) -> int:
    from .bench import main as bench_main

    return bench_main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="collectives",
        description="Collective communication over MPI that knows the network underneath.")
    parser.add_argument("--version", action="version", version=f"collectives {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("info", help="what this installation runs on: MPI, ABI, kernels, build flags")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=_info)

    from .bench import add_arguments as bench_args

    p = sub.add_parser("bench", help="benchmark collectives against the MPI library's own",
                       description="nccl-tests / OSU style sweep of every algorithm against native MPI. "
                                   "Starts its own mpiexec with -n ranks unless run under a launcher.")
    bench_args(p)
    p.set_defaults(func=_bench)

    from .model.cli import add_parser as add_model_commands
    from .topology.cli import add_parser as add_topology_commands

    add_topology_commands(sub)
    add_model_commands(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    from .errors import CollectivesError

    try:
        return int(args.func(args) or 0)
    except CollectivesError as exc:
        print(f"collectives: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("collectives: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (collectives topo describe ... | head): not an error of ours
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
