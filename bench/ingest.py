"""Ingest benchmark: dlrhub against a bare Starlette app, same Uvicorn, loaded by wrk.

    python bench/ingest.py [--duration 10] [--connections 64] [--threads 2]
    python bench/ingest.py --backend postgres --receivers 1 2 [--ingest-worker both]

Starts (a) `bench/bare_app.py` and (b) `dlrhub serve` (fresh temporary data
directory, access log off) once per configuration asked for, one after the
other, each as a subprocess under the same Uvicorn settings: 127.0.0.1, an
ephemeral port, `--http auto`, `--loop auto`, no access log, no server header,
log level warning. `--receivers N` is `server.processes = N`; `--backend
postgres` measures PostgreSQL (a fresh schema at `--dsn`, dropped after) beside
SQLite with the same receivers; `--ingest-worker` is `server.ingest_worker`.
Each gets a short warm-up, then `wrk --latency` for `--duration` seconds with
`bench/nrs360_events.lua`, which POSTs 360NRS event-notification forms with a
unique `id` per request to `/hooks/nrs360/events?token=...`.

Prints requests/s, p50 and p99 of each, the CPU time its process tree
(Uvicorn or `dlrhub serve` and every process it started, from /proc) spent per
2xx answer during the measured run, dlrhub's commits per second and writes per
commit (its `/metrics`, summed over the receiver processes), dlrhub's throughput
as a fraction of the bare app's, and a check that dlrhub stored one event per
2xx answer wrk counted (read from the store after a graceful stop). wrk stops with
requests in flight; dlrhub may have committed those too, so the check allows at
most the number of requests wrk sent without reading the answer. PostgreSQL's
own CPU is not in the figures (its server serves other clients too).

Exit status: 0 when measured (whatever the numbers), 1 when a server failed or
the stored count does not match, 2 when wrk is missing or arguments are wrong.
Only 127.0.0.1 is targeted; subprocesses and temporary directories are removed
on the way out.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import os
import platform
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
SCRIPT = BENCH_DIR / "nrs360_events.lua"
HOST = "127.0.0.1"
SOURCE_TOKEN = "bench-source-token-0123456789"
ADMIN_TOKEN = "bench-admin-token-0123456789"
HOOK_PATH = f"/hooks/nrs360/events?token={SOURCE_TOKEN}"
START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 15.0
P99_GOAL_MS = 50.0
THROUGHPUT_GOAL = 0.5
POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# The flags `dlrhub serve` gives uvicorn.Config (see dlrhub/cli.py), spelled for the CLI.
UVICORN_FLAGS = [
    "--workers",
    "1",
    "--http",
    "auto",
    "--loop",
    "auto",
    "--no-access-log",
    "--no-server-header",
    "--log-level",
    "warning",
]


class BenchError(Exception):
    """A failure that ends the run; the message says what to look at."""


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests: int  # answers wrk read
    generated: int  # request() calls: an upper bound of requests sent
    status_errors: int  # answers >= 400 ("Non-2xx or 3xx responses")
    socket_errors: str
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    output: str

    @property
    def ok_answers(self) -> int:
        return self.requests - self.status_errors

    @property
    def unanswered(self) -> int:
        """Requests wrk sent (or prepared) but never read an answer for."""
        return max(0, self.generated - self.requests)


@dataclass(frozen=True, slots=True)
class Server:
    name: str
    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path


def main(argv: list[str] | None = None) -> int:
    return run_with_wrk(run, __doc__, argv, add_options)


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend",
        choices=["sqlite", "postgres"],
        nargs="+",
        default=["sqlite"],
        help="stores to measure dlrhub on (SQLite is always measured)",
    )
    parser.add_argument(
        "--receivers", type=int, choices=[1, 2], nargs="+", default=[1], help="server.processes"
    )
    parser.add_argument(
        "--ingest-worker",
        choices=["on", "off", "both"],
        default="on",
        help="server.ingest_worker (both: measure each)",
    )
    parser.add_argument("--dsn", default=POSTGRES_DSN, help="PostgreSQL for --backend postgres")


def run_with_wrk(
    run: Callable[[str, argparse.Namespace], int],
    doc: str | None,
    argv: list[str] | None,
    add_options: Callable[[argparse.ArgumentParser], None] | None = None,
) -> int:
    """Read the wrk options every load benchmark here takes, find wrk, then `run`."""
    parser = argparse.ArgumentParser(
        description=doc.splitlines()[0] if doc else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if add_options is not None:
        add_options(parser)
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per server")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per server")
    args = parser.parse_args(argv)
    if not 1 <= args.duration <= 300 or not 0 <= args.warmup <= 60:
        parser.error("--duration must be 1-300 and --warmup 0-60 seconds")
    if args.threads < 1 or args.connections < args.threads:
        parser.error("--connections must be at least --threads, and --threads at least 1")
    wrk = shutil.which("wrk")
    if wrk is None:
        print("install wrk: apt-get install wrk", file=sys.stderr)
        return 2
    try:
        return run(wrk, args)
    except BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 1


@dataclass(frozen=True, slots=True)
class Setup:
    """One dlrhub configuration to measure."""

    backend: str
    receivers: int
    ingest_worker: bool

    @property
    def name(self) -> str:
        # Several receivers on PostgreSQL commit themselves (dlrhub/commands/serving.py).
        worker = "" if self.ingest_worker else ", no worker"
        if self.backend == "postgres" and self.receivers > 1:
            worker = ", no worker"
        plural = "s" if self.receivers > 1 else ""
        return f"dlrhub {self.backend}, {self.receivers} receiver{plural}{worker}"


@dataclass(frozen=True, slots=True)
class Measured:
    wrk: WrkResult
    cpu_seconds: float  # of the server's process tree during the measured run
    commits: float = 0.0  # transactions during the measured run
    writes: float = 0.0

    @property
    def cpu_ms_per_callback(self) -> float:
        return 1000 * self.cpu_seconds / max(1, self.wrk.ok_answers)


def setups(args: argparse.Namespace) -> list[Setup]:
    backends = ["sqlite"] + (["postgres"] if "postgres" in args.backend else [])
    workers = {"on": [True], "off": [False], "both": [True, False]}[args.ingest_worker]
    return [
        Setup(backend, receivers, worker)
        for backend in backends
        for receivers in sorted(set(args.receivers))
        for worker in workers
    ]


def run(wrk: str, args: argparse.Namespace) -> int:
    print(describe_machine(wrk, args), flush=True)
    results: dict[str, Measured] = {}
    checks: list[str] = []
    ok = True
    with tempfile.TemporaryDirectory(prefix="dlrhub-bench-") as temporary:
        work = Path(temporary)
        with serve(bare_command(), work, "bare", "/") as server:
            warm_up(wrk, server, args)
            results["bare Starlette"] = measure_tree(wrk, server, args)
        for number, setup in enumerate(setups(args)):
            directory = work / f"dlrhub-{number}"
            directory.mkdir()
            with postgres_schema(args.dsn if setup.backend == "postgres" else None) as schema:
                config = write_config(directory, setup, args.dsn, schema)
                with serve(dlrhub_command(config), directory, setup.name, "/healthz") as server:
                    warm_up(wrk, server, args)
                    before = commit_counts(server, setup.receivers)
                    measured = measure_tree(wrk, server, args)
                    after = commit_counts(server, setup.receivers)
                stored = (
                    count_stored(directory / "data" / "dlrhub.sqlite3", "measure-")
                    if schema is None
                    else count_stored_postgres(args.dsn, schema, "measure-")
                )
            results[setup.name] = Measured(
                measured.wrk, measured.cpu_seconds, after[0] - before[0], after[1] - before[1]
            )
            line, matches = stored_check(setup.name, measured.wrk, stored)
            checks.append(line)
            ok = ok and matches
    print()
    print(results_table(results, args.duration))
    print()
    bare = results["bare Starlette"].wrk
    for name, result in results.items():
        if name != "bare Starlette":
            print(f"{name}: {goal_lines(bare, result.wrk)}")
    print()
    print("\n".join(checks))
    return 0 if ok else 1


def stored_check(name: str, hub: WrkResult, stored: int) -> tuple[str, bool]:
    matches = hub.ok_answers <= stored <= hub.ok_answers + hub.unanswered
    extra = stored - hub.ok_answers
    verdict = (
        ("equal" if extra == 0 else f"{extra} of the unanswered requests were committed too")
        + " -> OK"
        if matches
        else "MISMATCH"
    )
    line = (
        f"stored-events check, {name}: {stored} events stored, wrk counted {hub.ok_answers} "
        f"2xx answers ({hub.status_errors} non-2xx, {hub.unanswered} sent but unanswered when "
        f"wrk stopped, socket errors: {hub.socket_errors}): {verdict}"
    )
    return line, matches


def measure_tree(wrk: str, server: Server, args: argparse.Namespace) -> Measured:
    """`measure`, with the CPU time the server's process tree spent meanwhile."""
    before = tree_cpu_seconds(server.process.pid)
    result = measure(wrk, server, args)
    after = tree_cpu_seconds(server.process.pid)
    return Measured(result, sum(after.get(pid, 0.0) - before.get(pid, 0.0) for pid in after))


def tree_cpu_seconds(root: int) -> dict[int, float]:
    """User + system CPU seconds of `root` and each of its descendants, by pid (/proc)."""
    seconds: dict[int, float] = {}
    pending = [root]
    while pending:
        pid = pending.pop()
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            continue  # it exited meanwhile
        seconds[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
        pending += [int(child) for child in children]
    return seconds


@contextlib.contextmanager
def postgres_schema(dsn: str | None) -> Iterator[str | None]:
    """A fresh schema name at `dsn` (the store creates it), dropped after; None without."""
    if dsn is None:
        yield None
        return
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    try:
        yield schema
    finally:
        postgres_query(dsn, f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def postgres_query(dsn: str, query: str, *parameters: object) -> object:
    import asyncio

    import asyncpg

    async def run() -> object:
        connection = await asyncpg.connect(dsn, timeout=10)
        try:
            return await connection.fetchval(query, *parameters)
        finally:
            await connection.close()

    return asyncio.run(run())


def count_stored_postgres(dsn: str, schema: str, prefix: str) -> int:
    query = f"SELECT count(*) FROM {schema}.events WHERE message_id LIKE $1"  # noqa: S608
    return int(str(postgres_query(dsn, query, prefix + "%")))


def describe_machine(wrk: str, args: argparse.Namespace) -> str:
    versions = ", ".join(
        f"{name} {_version(name)}" for name in ("uvicorn", "starlette", "uvloop", "httptools")
    )
    wrk_version = subprocess.run(
        [wrk, "--version"], capture_output=True, text=True, timeout=10, check=False
    ).stdout.splitlines()
    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, {versions}\n"
        f"{wrk_version[0] if wrk_version else 'wrk'}: -t{args.threads} -c{args.connections} "
        f"-d{args.duration}s --latency (warm-up {args.warmup}s), server and wrk on one machine"
    )


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def bare_command() -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "bare_app:app",
        "--app-dir",
        str(BENCH_DIR),
        "--host",
        HOST,
        *UVICORN_FLAGS,
    ]


def dlrhub_command(config: Path) -> list[str]:
    return [sys.executable, "-m", "dlrhub", "serve", "--config", str(config), "--host", HOST]


def write_config(
    work: Path,
    setup: Setup | None = None,
    dsn: str = POSTGRES_DSN,
    schema: str | None = None,
) -> Path:
    setup = setup or Setup("sqlite", 1, ingest_worker=True)
    store = (
        f'[store]\nbackend = "postgres"\ndsn = "{dsn}"\nschema = "{schema}"\n'
        if schema is not None
        else ""
    )
    path = work / "dlrhub.toml"
    path.write_text(
        f"""
data_dir = "{work / "data"}"
admin_token = "{ADMIN_TOKEN}"
log_level = "warning"

[server]
access_log = false
processes = {setup.receivers}
ingest_worker = {"true" if setup.ingest_worker else "false"}

{store}

[[sources]]
name = "nrs360"
provider = "360nrs"
token = "{SOURCE_TOKEN}"
""",
        encoding="utf-8",
    )
    return path


@contextlib.contextmanager
def serve(
    command: list[str],
    work: Path,
    name: str,
    ready_path: str,
    extra_env: dict[str, str] | None = None,
) -> Iterator[Server]:
    """Run `command --port <free port>` until it answers `ready_path`; stop it after."""
    port = free_port()
    log_path = work / f"{name}.log"
    env = {key: value for key, value in os.environ.items() if not key.startswith("DLRHUB_")}
    env.update(extra_env or {})
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*command, "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=work,
        )
    server = Server(name, process, f"http://{HOST}:{port}", log_path)
    try:
        wait_until_ready(server, ready_path)
        yield server
    finally:
        stop(process)


def wait_until_ready(server: Server, path: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline and server.process.poll() is None:
        try:
            with urllib.request.urlopen(server.base_url + path, timeout=1):
                return
        except urllib.error.HTTPError:
            return  # it answers; the bare app has no GET route
        except OSError:
            time.sleep(0.1)
    log = server.log_path.read_text(encoding="utf-8", errors="replace")
    raise BenchError(f"{server.name} did not start at {server.base_url}; its output:\n{log}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
    process.wait(timeout=STOP_TIMEOUT_SECONDS)


def warm_up(wrk: str, server: Server, args: argparse.Namespace) -> None:
    if args.warmup:
        url = server.base_url + HOOK_PATH
        run_wrk(wrk, url, args.warmup, args.connections, args.threads, "warmup")


def measure(wrk: str, server: Server, args: argparse.Namespace) -> WrkResult:
    url = server.base_url + HOOK_PATH
    result = run_wrk(wrk, url, args.duration, args.connections, args.threads, "measure")
    print(f"\n== {server.name} ==\n{result.output.rstrip()}", flush=True)
    if server.process.poll() is not None:
        raise BenchError(f"{server.name} exited during the load; see {server.log_path}")
    return result


def run_wrk(
    wrk: str, url: str, duration: int, connections: int, threads: int, tag: str
) -> WrkResult:
    command = [
        wrk,
        f"--threads={threads}",
        f"--connections={connections}",
        f"--duration={duration}s",
        "--timeout=10s",
        "--latency",
        f"--script={SCRIPT}",
        url,
        "--",
        tag,
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=duration + 60, check=False
    )
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return parse_wrk(done.stdout)


def parse_wrk(output: str) -> WrkResult:
    """Read wrk's report and the BENCH line of bench/nrs360_events.lua."""
    bench = re.search(r"^BENCH (.*)$", output, re.MULTILINE)
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    completed = re.search(r"^\s*(\d+) requests in ", output, re.MULTILINE)
    if bench is None or rate is None or completed is None:
        raise BenchError(f"cannot read wrk's output:\n{output}")
    fields = dict(pair.split("=") for pair in bench.group(1).split())
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    socket_errors = re.search(r"Socket errors:\s+(.*)$", output, re.MULTILINE)
    return WrkResult(
        requests=int(completed.group(1)),
        generated=int(fields["generated"]),
        status_errors=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=socket_errors.group(1).strip() if socket_errors else "none",
        requests_per_second=float(rate.group(1)),
        p50_ms=latency_ms(output, "50%"),
        p99_ms=latency_ms(output, "99%"),
        output=output,
    )


def latency_ms(output: str, percentile: str) -> float:
    match = re.search(rf"^\s+{percentile}\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
    if match is None:
        raise BenchError(f"no {percentile} latency in wrk's output:\n{output}")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[match.group(2)]
    return float(match.group(1)) * scale


def commit_counts(server: Server, receivers: int = 1) -> tuple[float, float]:
    """dlrhub's (transactions, writes) so far, from its Prometheus histogram.

    With several receiver processes, each answers for itself: scraped on new
    connections until each has answered (`dlrhub_receiver_process` names it).
    """
    seen: dict[str, tuple[float, float]] = {}

    def scrape(_: int) -> str:
        with urllib.request.urlopen(server.base_url + "/metrics", timeout=10) as answer:
            return str(answer.read().decode())

    # Idle processes on one listening socket: whichever wakes first accepts. Many
    # connections at once reach each of them.
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        texts = [text for _ in range(20) for text in pool.map(scrape, range(16))]
    for text in texts:
        label = re.search(r'^dlrhub_receiver_process\{receiver="(\d+)"\}', text, re.MULTILINE)
        count = re.search(r"^dlrhub_commit_batch_size_count (\S+)$", text, re.MULTILINE)
        total = re.search(r"^dlrhub_commit_batch_size_sum (\S+)$", text, re.MULTILINE)
        seen[label.group(1) if label else ""] = (
            float(count.group(1)) if count else 0.0,
            float(total.group(1)) if total else 0.0,
        )
    if len(seen) < receivers:
        raise BenchError(f"only receiver processes {sorted(seen)} answered /metrics")
    return (sum(c for c, _ in seen.values()), sum(w for _, w in seen.values()))


def count_stored(database: Path, prefix: str) -> int:
    """Events of the measured run (their message id is the form's `id`)."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        row = connection.execute(
            "SELECT count(*) FROM events WHERE message_id LIKE ?", (prefix + "%",)
        ).fetchone()
    finally:
        connection.close()
    return int(row[0])


def results_table(results: dict[str, Measured] | dict[str, WrkResult], duration: int = 0) -> str:
    """One row per server: its name, then wrk's figures (and CPU and commits when measured)."""
    heading = ("server", "requests/s", "p50 ms", "p99 ms", "2xx answers", "non-2xx")
    rows: list[tuple[str, ...]] = [heading]
    for name, result in results.items():
        if isinstance(result, WrkResult):
            rows.append((name, *_cells(result)))
            continue
        commits = (
            (f"{result.commits / duration:,.0f}", f"{result.writes / result.commits:.1f}")
            if result.commits and duration
            else ("-", "-")
        )
        rows.append((name, *_cells(result.wrk), f"{result.cpu_ms_per_callback:.3f}", *commits))
    if len(rows[-1]) > len(heading):
        rows[0] = (*heading, "CPU ms/cb", "commits/s", "writes/commit")
        rows = [row + ("",) * (len(rows[0]) - len(row)) for row in rows]
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = [
        "  ".join(
            cell.ljust(width) if column == 0 else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _cells(result: WrkResult) -> tuple[str, ...]:
    return (
        f"{result.requests_per_second:,.0f}",
        f"{result.p50_ms:.2f}",
        f"{result.p99_ms:.2f}",
        f"{result.ok_answers:,}",
        f"{result.status_errors:,}",
    )


def goal_lines(bare: WrkResult, hub: WrkResult) -> str:
    fraction = hub.requests_per_second / bare.requests_per_second
    throughput_met = "met" if fraction >= THROUGHPUT_GOAL else "NOT met"
    latency_met = "met" if hub.p99_ms < P99_GOAL_MS else "NOT met"
    return (
        f"dlrhub / bare throughput: {fraction:.3f} (goal >= {THROUGHPUT_GOAL}: {throughput_met})\n"
        f"dlrhub p99: {hub.p99_ms:.2f} ms (goal < {P99_GOAL_MS:.0f} ms: {latency_met})"
    )


if __name__ == "__main__":
    sys.exit(main())
