"""The local operator's failure: its exception says why the child failed, with no secret in it.

The child is a fake ``python`` (a shell script standing in for ``python -m cryptoetl run ...``)
that prints what a failing step prints and exits 1.
"""

from __future__ import annotations

import secrets

import pytest
from helpers import utc

from cryptoetl.airflow.operators import LocalStepOperator, failure_lines
from cryptoetl.config import Settings
from cryptoetl.steps import get_step

LINK = "(Background on this error at: https://sqlalche.me/e/20/gkpj)"
DB_ERROR = "sqlalchemy.exc.IntegrityError: (sqlite3.IntegrityError) UNIQUE constraint failed: price_data_real.symbol"


def _fail_with(tmp_path, lines: list[str], key: str) -> str:
    """The message of the exception LocalStepOperator raises when its child prints ``lines``."""
    from airflow.sdk.exceptions import AirflowException

    script = tmp_path / "python"
    script.write_text("#!/bin/sh\ncat <<'OUT'\n" + "\n".join(lines) + "\nOUT\nexit 1\n")
    script.chmod(0o755)
    settings = Settings(warehouse_url=f"sqlite:///{tmp_path / 'w.db'}", python=str(script),
                        source_env={"COINGECKO_API_KEY": key})
    operator = LocalStepOperator(task_id="load_prices", step=get_step("prices"), settings=settings)
    context = {"data_interval_start": utc(2026, 1, 1), "data_interval_end": utc(2026, 1, 2)}
    with pytest.raises(AirflowException) as info:
        operator.execute(context)
    return str(info.value)


def test_the_exception_carries_the_cli_error_line_not_the_link_and_no_key(tmp_path):
    key = secrets.token_hex(16)
    message = _fail_with(tmp_path, [
        "2026-01-02 00:00:01,000 ERROR cryptoetl: step prices failed",
        "Traceback (most recent call last):",
        '  File "cli.py", line 1, in main',
        DB_ERROR,
        f"[SQL: INSERT INTO price_data_real ...] [parameters: ('{key}',)]",
        LINK,
        f"error: step prices failed: IntegrityError: UNIQUE constraint failed: price_data_real.symbol ({key[:10]})",
    ], key)
    assert message == ("step prices exited with code 1: error: step prices failed: IntegrityError: "
                       "UNIQUE constraint failed: price_data_real.symbol (***)")


def test_without_an_error_line_the_exception_line_of_the_traceback_is_kept(tmp_path):
    message = _fail_with(tmp_path, ["Traceback (most recent call last):", '  File "x.py", line 1, in f', DB_ERROR,
                                    "[SQL: INSERT INTO price_data_real ...]", LINK], secrets.token_hex(16))
    assert message == f"step prices exited with code 1: {DB_ERROR}"
    assert "sqlalche.me" not in message


def test_failure_lines_falls_back_to_the_last_line():
    assert failure_lines(["starting", "Killed", LINK]) == "Killed"
    assert failure_lines([LINK]) == LINK  # better than nothing
    assert failure_lines([]) == "(no output)"


def test_the_run_log_line_says_which_intervals_are_a_history_load(tmp_path, capsys):
    """A backfill run's log names its intervals as a history load (make bench-pipeline counts those runs);
    a fresh scheduled run's does not."""
    from types import SimpleNamespace

    from cryptoetl.airflow.planning import HISTORY_MARK

    settings = Settings(warehouse_url=f"sqlite:///{tmp_path / 'w.db'}")
    operator = LocalStepOperator(task_id="load_prices", step=get_step("prices"), settings=settings)
    start, end = utc(2026, 1, 1), utc(2026, 1, 2)
    lines = {}
    for run_type in ("backfill", "scheduled"):
        capsys.readouterr()
        run = SimpleNamespace(run_type=run_type, run_id=f"{run_type}__2026-01-01", start_date=end)
        command = operator._prepare({"data_interval_start": start, "data_interval_end": end, "dag_run": run})
        assert "2026-01-01T00:00:00+00:00/2026-01-02T00:00:00+00:00" in " ".join(command)
        (lines[run_type],) = [line for line in capsys.readouterr().out.splitlines() if "run prices over" in line]
    assert f"({HISTORY_MARK} 2026-01-01T00:00:00+00:00/2026-01-02T00:00:00+00:00)" in lines["backfill"]
    assert HISTORY_MARK not in lines["scheduled"]
