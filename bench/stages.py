"""Where ingest time goes: the bare app, then dlrhub cut off after each stage.

    python bench/stages.py [--duration 10] [--connections 64] [--threads 2]

Runs `bench/ingest.py`'s wrk load, one server after the other, under the same
Uvicorn settings: the bare Starlette app; dlrhub's receiver that stops before
normalizing (`receive`); one that normalizes but does not store (`normalize`,
both from `bench/stage_app.py`); and `dlrhub serve` with its durable SQLite
commit (`store`). Prints requests/s, p50 and p99 for each, each as a fraction of
the bare app, and what each stage adds per callback (µs of the one event-loop
thread, from the difference of 1/throughput). Only 127.0.0.1 is targeted.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from ingest import (
    BENCH_DIR,
    HOST,
    UVICORN_FLAGS,
    WrkResult,
    bare_command,
    describe_machine,
    dlrhub_command,
    measure,
    results_table,
    run_with_wrk,
    serve,
    warm_up,
    write_config,
)


def stage_command() -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "stage_app:app",
        "--app-dir",
        str(BENCH_DIR),
        "--host",
        HOST,
        *UVICORN_FLAGS,
    ]


def run(wrk: str, args: argparse.Namespace) -> int:
    print(describe_machine(wrk, args), flush=True)
    results: dict[str, WrkResult] = {}
    with tempfile.TemporaryDirectory(prefix="dlrhub-stages-") as temporary:
        work = Path(temporary)
        config = write_config(work)
        servers = [
            ("bare Starlette", bare_command(), "/", {}),
            ("receive", stage_command(), "/healthz", {"BENCH_STAGE": "receive"}),
            ("normalize", stage_command(), "/healthz", {"BENCH_STAGE": "normalize"}),
            ("store (dlrhub serve)", dlrhub_command(config), "/healthz", {}),
        ]
        for name, command, ready, stage_env in servers:
            env = {**stage_env, "BENCH_CONFIG": str(config)}
            with serve(command, work, name.split()[0], ready, env) as server:
                warm_up(wrk, server, args)
                results[name] = measure(wrk, server, args)
    print()
    print(results_table(results))
    print()
    print(stage_lines(results))
    return 0


def stage_lines(results: dict[str, WrkResult]) -> str:
    bare = results["bare Starlette"].requests_per_second
    lines, previous = [], None
    for name, result in results.items():
        rate = result.requests_per_second
        line = f"{name:<22} {rate / bare:5.2f} of the bare app"
        if previous is not None:
            added = 1e6 / rate - 1e6 / previous
            line += f", {added:+6.1f} µs per callback over the stage before"
        lines.append(line)
        previous = rate
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return run_with_wrk(run, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
