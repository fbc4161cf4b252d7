"""``python -m cryptoetl``: the one command that pods, local subprocess tasks and people run.

    python -m cryptoetl migrate [--sql]         # create, adopt or upgrade the warehouse schema (= init-db)
    python -m cryptoetl run STEP --interval 2026-01-01T00:00Z/2026-01-02T00:00Z [--interval ...]
    python -m cryptoetl run STEP --start 2026-01-01 --end 2026-01-02
    python -m cryptoetl run sentiment --interval ... --rescore   # score again with the current model revision
    python -m cryptoetl check STEP --interval ...    # the quality gate of what STEP wrote (exit 1: a hard check failed)
    python -m cryptoetl health [--start 2026-01-01 --end 2026-01-08] [--heal]   # holes, stale tables, backfills
    python -m cryptoetl rebuild-features [--start 2026-01-01 --end 2026-02-01]   # default: all hours with prices
    python -m cryptoetl summary
    python -m cryptoetl pools                    # the Airflow pools of the registered sources, as JSON
    python -m cryptoetl sandbox --port 8081      # offline stand-in for every API (SYNTHETIC data)

Exit codes: 0 success, 2 bad input or configuration, or a warehouse schema older than the code
(one ``error:`` line naming the setting or the command to run, nothing written), 1 a step failed
(its transaction rolled back; the interval keeps its previous rows): the traceback, then one
``error:`` line with the cause (for a database error, the database's own message), always last,
so whoever keeps only the last line keeps the cause.

No secret reaches the output: every log handler gets the redactor's filter, and the ``error:``
lines go through it too (cryptoetl/redaction.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from datetime import UTC, datetime, timedelta

from cryptoetl import redaction
from cryptoetl.config import ConfigError, Settings
from cryptoetl.intervals import make_interval, merge, parse_interval
from cryptoetl.sources.registry import check_settings
from cryptoetl.step import StepOption
from cryptoetl.steps import get_step, steps

log = logging.getLogger("cryptoetl")


def _engine(settings: Settings):
    from cryptoetl.airflow.connection import warehouse_url
    from cryptoetl.warehouse.engine import get_engine

    where = ("CRYPTOETL_WAREHOUSE_URL" if settings.warehouse_url
             else f"the Airflow connection {settings.warehouse_conn_id!r}")
    return get_engine(warehouse_url(settings), where)


def _macro_series(settings: Settings) -> tuple[tuple[str, str], ...]:
    """The series of a custom CRYPTOETL_MACRO_SERIES file, whose feature columns migrate adds."""
    from cryptoetl.loaders.macro import feature_series

    return feature_series(settings.macro_series_file)


def _checked_engine(settings: Settings, *, features: bool):
    """The warehouse, once its schema is checked to be this code's (one query): otherwise exit 2
    before anything is written, naming the command to run. ``features``: the step writes
    ml_features_materialized, so the configured macro series' columns must exist too."""
    from cryptoetl.warehouse import migrate

    engine = _engine(settings)
    try:
        migrate.check_current(engine, _macro_series(settings) if features else None)
    except migrate.SchemaOutdated as exc:
        raise ConfigError(str(exc)) from None
    return engine


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    """Create, adopt or upgrade the warehouse schema to this code's (``warehouse/migrate.py``)."""
    from cryptoetl.warehouse import migrate

    engine = _engine(settings)
    macro = _macro_series(settings)
    try:
        if args.sql:
            migrate.upgrade_sql(engine, sys.stdout, macro)
            return 0
        notes = migrate.upgrade(engine, macro)
    except migrate.MigrationRefused as exc:
        raise ConfigError(str(exc)) from None
    for note in notes:
        print(note)
    url = engine.url.render_as_string(hide_password=True)
    print(f"warehouse schema at revision {migrate.head_revision()} on {url}")
    return 0


def _intervals(args: argparse.Namespace) -> list:
    intervals = [parse_interval(text) for text in args.interval or []]
    if args.start is not None or args.end is not None:
        intervals.append(make_interval(args.start, args.end, "--start/--end"))
    if not intervals:
        raise ConfigError(f"{args.command}: give --interval START/END (repeatable) or --start and --end")
    return intervals


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from cryptoetl.step import StepContext
    from cryptoetl.warehouse.quota import WarehouseLimiter

    step = get_step(args.step)
    intervals = _intervals(args)
    options = _step_options()
    given = {name for name in options if getattr(args, name)}
    if unknown := given - {option.name for option in step.options}:
        raise ConfigError("run: " + "; ".join(f"--{name} applies to the {', '.join(options[name][1])} step only, "
                                               f"not {step.name!r}" for name in sorted(unknown)))
    engine = _checked_engine(settings, features=step.writes == "ml_features_materialized")
    ctx = StepContext(settings=settings, engine=engine, options=frozenset(given), limiter=WarehouseLimiter(engine))
    for interval in merge(intervals):
        began = time.monotonic()
        try:
            rows = step.execute(ctx, interval)
        finally:
            for client in ctx.clients.values():  # also when the step failed: the calls were spent
                log.info("%s: %d API calls so far in this task", client.name, client.calls)
        # the work, apart from starting the process: `make bench`'s pipeline section reads this line
        log.info("%s %s: %d rows written in %.2fs; peak RSS %.0f MiB", step.name, interval, rows,
                 time.monotonic() - began, peak_rss_mib())
    return 0


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (Linux reports ru_maxrss in KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cmd_rebuild_features(args: argparse.Namespace, settings: Settings) -> int:
    """Rebuild ml_features_materialized in the warehouse (INSERT ... SELECT), for a range or for
    every hour that has a price (a row where the hour's indicators are computed). For when the
    feature code changed; upstream reloads trigger their own rebuilds."""
    from cryptoetl.warehouse import features

    engine = _checked_engine(settings, features=True)
    if settings.universe_top is None:
        symbols = [coin.symbol for coin in settings.symbols]
    else:  # top:N: every coin the universe ever held
        from cryptoetl.warehouse.universe import registered

        symbols = sorted(registered(engine))
    if args.start is not None or args.end is not None:
        interval = make_interval(args.start, args.end, "--start/--end")
        start, end = interval.start, interval.end
    elif (span := features.price_span(engine, symbols)) is not None:
        start, end = span
    else:
        print("no prices in the warehouse: nothing to rebuild")
        return 0
    began = time.monotonic()
    rows = features.rebuild(engine, start, end, symbols, _macro_series(settings))
    print(f"ml_features_materialized: {rows} rows rebuilt for [{start}, {end}) in {time.monotonic() - began:.2f}s")
    return 0


class QualityGateFailed(RuntimeError):
    """A hard quality check failed: the interval is bad."""


def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    """The quality gate of what STEP wrote over the intervals: every result recorded; exit 1 on a fail."""
    from cryptoetl.quality.checks import run_checks, subject
    from cryptoetl.step import StepContext

    step = get_step(args.step)
    engine = _checked_engine(settings, features=False)
    ctx = StepContext(settings=settings, engine=engine)
    failed = []
    for interval in merge(_intervals(args)):
        for result in run_checks(ctx, step, interval):
            print(f"{subject(step)} {interval} {result.check}: {result.status.upper()} (observed {result.observed}, "
                  f"threshold {result.threshold}) {result.detail}".rstrip())
            if result.status == "fail":
                failed.append(f"{result.check} ({result.detail})")
    if failed:
        raise QualityGateFailed(f"{subject(step)}: {'; '.join(failed)}. The interval is marked bad: the features "
                                "are not built on it until a rerun passes")
    return 0


def cmd_health(args: argparse.Namespace, settings: Settings) -> int:
    """Holes and stale tables over --start/--end (default: the last CRYPTOETL_HEALTH_DAYS days), the
    backfill that fills each; --heal creates those backfills through Airflow's REST API."""
    from cryptoetl.quality.report import scan
    from cryptoetl.step import StepContext

    if args.start is None and args.end is None:
        end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        interval = make_interval(end - timedelta(days=settings.health_days), end)
    else:
        interval = make_interval(args.start, args.end, "--start/--end")
    engine = _checked_engine(settings, features=False)
    scan(StepContext(settings=settings, engine=engine), interval, do_heal=args.heal)
    return 0


def cmd_summary(args: argparse.Namespace, settings: Settings) -> int:
    from cryptoetl.report import print_summary

    print_summary(_engine(settings))
    return 0


def cmd_quota(args: argparse.Namespace, settings: Settings) -> int:
    """CoinGecko's calls this month against the budget, and what loading a range of prices would cost."""
    from cryptoetl.loaders.prices import planned_fetches
    from cryptoetl.sources.coingecko import SPEC, beyond_plan_history, points_needed
    from cryptoetl.step import StepContext
    from cryptoetl.warehouse import quota

    engine = _checked_engine(settings, features=False)
    source, now = SPEC.resolve(settings), time.time()
    spent, budget = quota.calls_this_month(engine, SPEC.name, now), source.monthly_calls
    left = f"{budget:,}-call budget ({budget - spent:,} left)" if budget else "no monthly budget"
    print(f"coingecko, {source.plan} plan: {spent:,} calls in {quota.month_of(now)}, {left}; "
          f"{source.rate_per_minute:g} calls a minute shared by every task")
    if args.start is None and args.end is None:
        return 0
    interval = make_interval(args.start, args.end, "--start/--end")
    if problem := beyond_plan_history(source.plan, points_needed(interval.start, interval.end)[0],
                                      datetime.fromtimestamp(now, UTC)):
        print(f"prices {interval}: {problem}; a run of such a day fails before any call")
    coins, todo = planned_fetches(StepContext(settings=settings, engine=engine), interval)
    over = quota.overrun(engine, SPEC.name, len(todo), budget, now)[1]
    verdict = f"exceeds the budget by {over:,}: the run that crosses it fails before its first call" if over \
        else "fits"
    print(f"prices {interval}: {len(coins)} coins, {len(todo):,} calls for the blocks not landed yet "
          f"({len(todo) / max(len(coins), 1):.1f} per coin, ~{len(todo) / source.rate_per_minute:.0f} min of "
          f"spacing); {verdict}")
    return 0


def cmd_pools(args: argparse.Namespace, settings: Settings) -> int:
    from cryptoetl.sources.registry import pools

    print(json.dumps(pools(), indent=2))
    return 0


def _step_options() -> dict[str, tuple[StepOption, list[str]]]:
    """Every step option by name, with the steps that declare it (steps.py)."""
    out: dict[str, tuple[StepOption, list[str]]] = {}
    for step in steps().values():
        for option in step.options:
            out.setdefault(option.name, (option, []))[1].append(step.name)
    return out


def cmd_sandbox(args: argparse.Namespace, settings: Settings) -> int:
    from cryptoetl.config import local_ports
    from cryptoetl.sandbox.server import serve

    serve(args.host, args.port if args.port is not None else local_ports()["sandbox"])
    return 0


def _range_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--start", help="range start (ISO-8601, UTC if no offset)")
    parser.add_argument("--end", help="range end, exclusive")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m cryptoetl", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    for name, what in (("migrate", "create, adopt or upgrade the warehouse schema to this code's, with the "
                                   "columns of the configured macro series (idempotent; rows are kept)"),
                       ("init-db", "the same as migrate (its name before migrations)")):
        migrate = sub.add_parser(name, help=what)
        migrate.add_argument("--sql", action="store_true",
                             help="print the SQL it would run on this warehouse instead of running it")

    run = sub.add_parser("run", help="run one step over one or more data intervals")
    run.add_argument("step", help=" | ".join(steps()))
    run.add_argument("--interval", action="append", metavar="START/END",
                     help="ISO-8601 half-open interval; repeat for several (they are merged)")
    run.add_argument("--start", help="interval start (ISO-8601, UTC if no offset)")
    run.add_argument("--end", help="interval end, exclusive")
    for name, (option, owners) in _step_options().items():  # declared on their steps (steps.py)
        run.add_argument(f"--{name}", action="store_true", help=f"{', '.join(owners)}: {option.help}")

    check = sub.add_parser("check", help="the quality gate: check what STEP wrote over the intervals; exit 1 "
                                         "when a hard check fails (data_quality_results)")
    check.add_argument("step", help=" | ".join(steps()))
    check.add_argument("--interval", action="append", metavar="START/END", help="as for run")
    check.add_argument("--start", help="interval start")
    check.add_argument("--end", help="interval end, exclusive")
    health = sub.add_parser("health", help="holes and stale tables, with the backfill that fills each "
                                           "(default: the last CRYPTOETL_HEALTH_DAYS days)")
    _range_args(health)
    health.add_argument("--heal", action="store_true", help="create the backfills through Airflow's REST API "
                                                             "(CRYPTOETL_AIRFLOW_API_URL), bounded, recorded")

    rebuild = sub.add_parser("rebuild-features", help="rebuild ml_features_materialized in SQL (default: all)")
    _range_args(rebuild)

    sub.add_parser("summary", help="rows per table and an example query")
    quota_parser = sub.add_parser("quota", help="CoinGecko calls this month, and what loading prices for "
                                                "--start/--end would cost")
    _range_args(quota_parser)
    sub.add_parser("pools", help="the Airflow pools of the registered sources as JSON (include/pools.json)")

    sandbox = sub.add_parser("sandbox", help="serve the offline API sandbox (synthetic data)")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, help="default: the local stack's, CRYPTOETL_PORT_BASE + 1")
    return parser


COMMANDS = {"migrate": cmd_migrate, "init-db": cmd_migrate, "run": cmd_run, "check": cmd_check, "health": cmd_health,
            "rebuild-features": cmd_rebuild_features,
            "summary": cmd_summary, "quota": cmd_quota, "pools": cmd_pools, "sandbox": cmd_sandbox}


def failure_summary(exc: BaseException) -> str:
    """One line saying why: the exception's type and first line; for a database error (SQLAlchemy's
    ``DBAPIError``: OperationalError, IntegrityError, ...) the database's own message
    (``exc.orig``), never SQLAlchemy's trailing "Background on this error" link."""
    orig = getattr(exc, "orig", None)
    detail = orig if isinstance(orig, BaseException) else exc
    lines = [line.strip() for line in str(detail).splitlines() if line.strip() and "sqlalche.me" not in line]
    return redaction.redact(f"{type(exc).__name__}: {lines[0] if lines else type(detail).__name__}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not args.verbose:  # alembic announces each of its plugins at INFO when it loads
        logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    redaction.install()  # before anything logs; the settings' secrets follow once they are read
    what = f"step {args.step}" if args.command == "run" else \
        f"check of {args.step}" if args.command == "check" else args.command
    try:
        settings = Settings.from_env()
        redaction.install(settings)
        check_settings(settings)
        return COMMANDS[args.command](args, settings)
    except ConfigError as exc:
        message = " ".join(str(exc.args[0] if exc.args else exc).split())
        print(f"error: {redaction.redact(message)}", file=sys.stderr)
        return 2
    except QualityGateFailed as exc:  # the results said it all: no traceback
        print(f"error: {what} failed: {redaction.redact(str(exc))}", file=sys.stderr, flush=True)
        return 1
    except Exception as exc:  # noqa: BLE001 - reported here, once: traceback, then the cause
        log.error("%s failed", what, exc_info=True)
        print(f"error: {what} failed: {failure_summary(exc)}", file=sys.stderr, flush=True)
        return 1
