"""Every integer argument of the `dlrhub` command, out of range or not an integer:
one line on stderr and exit 2, never a traceback (the CLI in a subprocess).

The integer arguments are found by walking the parser, so a new one is checked
without changing this test.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from dlrhub.cli import build_parser
from dlrhub.commands.common import WholeNumber
from dlrhub.store.base import MAX_INTEGER
from tests.processes import run_dlrhub

NOT_INTEGERS = ["-1", "abc"]  # and each bound ± 1 (2^63: past what the store holds)


def subcommands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[
    tuple[tuple[str, ...], argparse.ArgumentParser]
]:  # fmt: skip
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += subcommands(child, (*path, name))
    return found


def integer_arguments() -> list[tuple[list[str], int, int]]:
    """(argv with `{}` where the value goes, lowest, highest) for each integer argument."""
    found = []
    for path, parser in subcommands(build_parser()):
        positionals = [action for action in parser._actions if not action.option_strings]
        for action in parser._actions:
            if action.type is int:
                where = f"dlrhub {' '.join(path)} {action.dest}"
                raise AssertionError(f"{where}: type=int is unchecked, use WholeNumber")
            if not isinstance(action.type, WholeNumber):
                continue
            if action.option_strings:
                argv = [*path, action.option_strings[0], "{}"]
            else:
                before = positionals[: positionals.index(action)]
                argv = [*path, *("x" for _ in before), "{}"]
            found.append((argv, action.type.low, action.type.high))
    return found


def test_every_integer_argument_is_found() -> None:
    found = {" ".join(argv) for argv, _, _ in integer_arguments()}
    assert found == {
        "serve --port {}",
        "events --after-seq {}",
        "events --limit {}",
        "quarantine show {}",
        "quarantine reprocess {}",
        "quarantine drop {}",
        "worker --metrics-port {}",
        "poll --metrics-port {}",
        "replay --after-seq {}",
        "replay --until-seq {}",
        "dlq retry x {}",
        "dlq drop x {}",
    }


async def test_every_integer_argument_out_of_range_is_one_line_and_exit_2(
    tmp_path: Path,
) -> None:
    cases = []
    for argv, low, high in integer_arguments():
        for value in {*NOT_INTEGERS, str(high + 1), str(low - 1)}:
            arguments = [value if part == "{}" else part for part in argv]
            cases.append([*arguments, "--data-dir", str(tmp_path / "nowhere")])
    limit = asyncio.Semaphore(4)

    async def run(arguments: list[str]) -> tuple[list[str], int, str, str]:
        async with limit:
            result = await run_dlrhub(*arguments, cwd=tmp_path)
        return arguments, result.returncode, result.stdout, result.stderr

    for arguments, code, stdout, stderr in await asyncio.gather(*map(run, cases)):
        where = f"dlrhub {' '.join(arguments)}"
        assert code == 2, f"{where}: exit {code}\n{stderr}"
        assert stdout == "", where
        assert stderr.count("\n") == 1 and stderr.startswith("dlrhub: argument "), (where, stderr)
        assert "must be a whole number from" in stderr and "--help" in stderr, (where, stderr)
        assert "Traceback" not in stderr


async def test_the_bounds_themselves_are_taken(tmp_path: Path) -> None:
    top = str(MAX_INTEGER)
    data_dir = str(tmp_path / "nowhere")
    for arguments in (
        ["events", "--after-seq", top, "--limit", top],
        ["quarantine", "show", top],
        ["quarantine", "reprocess", "0", top],
    ):
        result = await run_dlrhub(*arguments, "--data-dir", data_dir, cwd=tmp_path)
        assert result.returncode == 1, result.stderr  # parsed; then: no store there
        assert result.stderr.startswith("dlrhub: no store at"), result.stderr


async def test_other_usage_errors_are_one_line_too(tmp_path: Path) -> None:
    for arguments in (["frobnicate"], ["send", "--to", "1"], ["events", "--status", "nope"]):
        result = await run_dlrhub(*arguments, cwd=tmp_path)
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("dlrhub: "), (
            result.stderr
        )


async def test_replay_since_an_age_before_year_one_is_a_usage_error(tmp_path: Path) -> None:
    config = tmp_path / "dlrhub.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\n'
        f'[[sinks]]\nname = "out"\nkind = "jsonl"\npath = "{tmp_path / "out.jsonl"}"\n',
        encoding="utf-8",
    )
    result = await run_dlrhub(
        "replay", "out", "--since", "99999999999d", "--config", str(config), cwd=tmp_path
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr == "dlrhub: --since '99999999999d' reaches back before year 1\n"
