"""Sentiment features: per (scope, model, hour) article counts and score means over trailing windows.

``tmp_feat_sent_*``: per (scope, model, hour) article counts and score sums; the trailing 24 h /
7 d windows as running sums over change points (a bucket enters, then leaves each window); the
levels spread per hour (all articles) and per (symbol, hour) (articles that mention the symbol).

Point in time: articles with ``published_at`` in (T - window, T], scored by the model; the count
is 0 and the mean NULL when there are none.
"""

from __future__ import annotations

from cryptoetl.warehouse import schema
from cryptoetl.warehouse.features import symbol_context
from cryptoetl.warehouse.features.dialect import Dialect

MAX_WINDOW_HOURS = max(schema.SENTIMENT_WINDOWS_HOURS.values())
# An article (or its score) counts in every window that still covers it: up to the longest window ahead.
LOOKAHEAD_HOURS = {"crypto_sentiment_data": MAX_WINDOW_HOURS, "crypto_news": MAX_WINDOW_HOURS}
TEMP_TABLES = ("tmp_feat_sent_events", "tmp_feat_sent_changes", "tmp_feat_sent_levels", "tmp_feat_sent_all")

Combo = tuple[str, str, int]  # (model, window name, window hours)


def context_statements(d: Dialect) -> list[tuple[str, bool]]:
    """(statement, needs the :symbols expansion) in execution order; parameters :lo, :hi,
    :ext_lo_open, :hi_close."""
    combos = [(m, w, hours) for m in schema.SENTIMENT_MODELS for w, hours in schema.SENTIMENT_WINDOWS_HOURS.items()]
    return [*_event_statements(d), *_change_statements(d, combos), *_level_statements(d, combos),
            *_spread_statements(d, combos)]


def _event_statements(d: Dialect) -> list[tuple[str, bool]]:
    # Hourly buckets (an article published in (T - 1h, T] counts from hour T on), one series per
    # model for all articles ('*') and one per (mentioned symbol, model).
    dt = d.datetime_type
    stmts: list[tuple[str, bool]] = []
    stmts.append((d.create_temp("tmp_feat_sent_events", f"symbol VARCHAR(16) NOT NULL, model_key VARCHAR(16) NOT NULL, "
                                f"time {dt} NOT NULL, n INTEGER NOT NULL, total DOUBLE NOT NULL, "
                                "PRIMARY KEY (symbol, model_key, time)"), False))
    models = ", ".join(f"'{m}'" for m in schema.SENTIMENT_MODELS)
    bucket = d.ceil_hour("a.published_at")
    # Driven from the articles of the window (published_at's index), then their scores and mentions by
    # key: left to itself, MariaDB drove from every mention of the symbols (all of history) instead.
    join = d.straight_join()
    scored = (f"FROM crypto_news a {join} crypto_sentiment_data s ON s.article_id = a.article_id "
              f"AND s.model_key IN ({models})")
    window = "a.published_at > :ext_lo_open AND a.published_at <= :hi_close"
    stmts.append((f"""INSERT INTO tmp_feat_sent_events (symbol, model_key, time, n, total)
SELECT '*', s.model_key, {bucket}, COUNT(*), SUM(s.score)
{scored}
WHERE {window}
GROUP BY s.model_key, {bucket}""", False))
    stmts.append((f"""INSERT INTO tmp_feat_sent_events (symbol, model_key, time, n, total)
SELECT mt.symbol, s.model_key, {bucket}, COUNT(*), SUM(s.score)
{scored}
{join} crypto_news_mentions mt ON mt.article_id = a.article_id
WHERE {window} AND mt.symbol IN :symbols
GROUP BY mt.symbol, s.model_key, {bucket}""", True))
    return stmts


def _deltas(combos: list[Combo]) -> str:
    return ", ".join(f"n_{m}_{w}, t_{m}_{w}" for m, w, _ in combos)


def _change_statements(d: Dialect, combos: list[Combo]) -> list[tuple[str, bool]]:
    # Trailing windows as change points: a bucket enters every window at its hour and leaves the
    # 24 h / 7 d window 24 / 168 hours later. A running sum over the change points of a series
    # gives its window levels, constant until the next change point; each level is then spread
    # over the hours it covers. The work grows with the news, not with symbols x hours.
    dt, deltas = d.datetime_type, _deltas(combos)
    stmts: list[tuple[str, bool]] = []
    stmts.append((d.create_temp("tmp_feat_sent_changes", f"symbol VARCHAR(16) NOT NULL, time {dt} NOT NULL, "
                                + ", ".join(f"n_{m}_{w} INTEGER NOT NULL, t_{m}_{w} DOUBLE NOT NULL"
                                            for m, w, _ in combos)), False))

    def change(sign: str, leaving: int | None) -> str:
        """Deltas of each bucket: entering every window (leaving None), or leaving one window."""
        cols = []
        for m, _, hours in combos:
            hit = f"e.model_key = '{m}'" + ("" if leaving is None else f" AND {hours} = {leaving}")
            cols += [f"CASE WHEN {hit} THEN {sign}e.n ELSE 0 END", f"CASE WHEN {hit} THEN {sign}e.total ELSE 0 END"]
        when = "e.time" if leaving is None else d.plus_hours_expr("e.time", str(leaving))
        return (f"INSERT INTO tmp_feat_sent_changes (symbol, time, {deltas})\n"
                f"SELECT e.symbol, {when}, {', '.join(cols)} FROM tmp_feat_sent_events e WHERE {when} < :hi")

    stmts.append((change("", None), False))
    for hours in sorted(set(schema.SENTIMENT_WINDOWS_HOURS.values())):
        stmts.append((change("-", hours), False))
    return stmts


def _level_statements(d: Dialect, combos: list[Combo]) -> list[tuple[str, bool]]:
    """The window levels of each series from the running sums of its change points, each valid
    until the series' next change point."""
    dt = d.datetime_type
    levels = ", ".join(f"n_{m}_{w} INTEGER NOT NULL, t_{m}_{w} DOUBLE NOT NULL" for m, w, _ in combos)
    running = ", ".join(f"SUM(SUM({c}_{m}_{w})) OVER (PARTITION BY symbol ORDER BY time ROWS UNBOUNDED PRECEDING)"
                        for m, w, _ in combos for c in ("n", "t"))
    return [
        (d.create_temp("tmp_feat_sent_levels", f"symbol VARCHAR(16) NOT NULL, time {dt} NOT NULL, "
                       f"valid_to {dt} NOT NULL, {levels}, PRIMARY KEY (symbol, time)"), False),
        (f"""INSERT INTO tmp_feat_sent_levels (symbol, time, valid_to, {_deltas(combos)})
SELECT symbol, time, COALESCE(LEAD(time) OVER (PARTITION BY symbol ORDER BY time), :hi), {running}
FROM tmp_feat_sent_changes
GROUP BY symbol, time""", False),
    ]


def spread_columns() -> list[tuple[str, str]]:
    """(name, SQL type) of the level columns of ``tmp_feat_sent_all`` and the family's columns of
    ``tmp_feat_sym_ctx``: a count and a mean per (model, window)."""
    return [column for m in schema.SENTIMENT_MODELS for w in schema.SENTIMENT_WINDOWS_HOURS
            for column in ((f"{m}_{w}_n", "INTEGER"), (f"{m}_{w}_mean", "DOUBLE"))]


def _spread_statements(d: Dialect, combos: list[Combo]) -> list[tuple[str, bool]]:
    """Each level spread over the hours it covers: per hour for all articles (``tmp_feat_sent_all``)
    and per (symbol, hour) for the articles that mention the symbol (``tmp_feat_sym_ctx``)."""
    dt = d.datetime_type
    defs = [f"{name} {kind}" for name, kind in spread_columns()]
    names_ = [name for name, _ in spread_columns()]
    exprs = []
    for m, w, _ in combos:  # the same (model, window) order as spread_columns
        exprs += [f"v.n_{m}_{w}", f"CASE WHEN v.n_{m}_{w} > 0 THEN v.t_{m}_{w} / v.n_{m}_{w} END"]
    any_article = " OR ".join(f"v.n_{m}_{w} > 0" for m, w, _ in combos)
    spread = (f"FROM tmp_feat_sent_levels v {d.straight_join()} tmp_feat_hours h\n"
              f"WHERE h.time >= {d.greatest('v.time', ':lo')} AND h.time < v.valid_to AND ({any_article})")
    return [
        (d.create_temp("tmp_feat_sent_all", f"time {dt} NOT NULL PRIMARY KEY, {', '.join(defs)}"), False),
        (f"INSERT INTO tmp_feat_sent_all (time, {', '.join(names_)})\n"
         f"SELECT h.time, {', '.join(exprs)}\n{spread} AND v.symbol = '*'", False),
        (symbol_context.upsert(d, names_, f"SELECT v.symbol, h.time, {', '.join(exprs)}\n{spread} AND v.symbol <> '*'"),
         False),
    ]
