"""The end-of-run summary: rows per table and one example query with its result."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime

from sqlalchemy import Engine, func, or_, select, text

from cryptoetl.warehouse import schema
from cryptoetl.warehouse.engine import to_naive_utc

EXAMPLE_QUERY = """\
SELECT symbol, time, price, return_24h, rsi_14, macro_treasury_10y_yield AS dgs10,
       macro_treasury_10y_yield_age_days AS dgs10_age_d, onchain_transaction_count AS btc_tx,
       sent_cryptobert_sym_24h_count AS news_24h, sent_cryptobert_sym_24h_mean AS sentiment_24h
FROM ml_features_materialized
WHERE symbol = 'BTC'
ORDER BY time DESC
LIMIT 5"""


def feature_families() -> dict[str, list[str]]:
    """The column families of ml_features_materialized (docs/DATA_DICTIONARY.md)."""
    return {
        "price, volume, returns": ["price", "return_1h", "return_24h", "return_7d"],
        "technical indicators": list(schema.TECHNICAL_COLUMNS),
        f"macro ({len(schema.MACRO_FEATURE_COLUMNS)} series, as of release)":
            [value for _, value, _ in schema.MACRO_FEATURE_COLUMNS],
        "on-chain (latest published day)": list(schema.ONCHAIN_FEATURE_COLUMNS),
        "news sentiment (24h / 7d)": [c for c in schema.SENTIMENT_FEATURE_COLUMNS if c.endswith("_mean")],
    }


def feature_coverage(engine: Engine) -> dict[str, int]:
    """{family: rows with at least one value of the family}."""
    table = schema.ml_features_materialized
    out = {}
    with engine.connect() as conn:
        for family, columns in feature_families().items():
            where = or_(*(table.c[c].is_not(None) for c in columns))
            out[family] = conn.execute(select(func.count()).select_from(table).where(where)).scalar_one()
    return out


def _synthetic_filter(table):
    """A WHERE clause selecting the rows built from the sandbox, or None if the table cannot tell."""
    if "is_synthetic" in table.c:
        return table.c.is_synthetic.is_(True)
    for name in ("source", "data_source"):
        if name in table.c:
            return table.c[name].like("%synthetic%")
    return None


def table_counts(engine: Engine) -> dict[str, tuple[int, int | None, object, object]]:
    """{table: (rows, synthetic rows or None, min time, max time)} for every warehouse table."""
    counts = {}
    with engine.connect() as conn:
        for table in schema.metadata.sorted_tables:
            time_col = next((table.c[n] for n in ("time", "published_at", "date", "observation_date", "known_at",
                                                  "first_seen_at")
                             if n in table.c), None)
            cols = [func.count()]
            if time_col is not None:
                cols += [func.min(time_col), func.max(time_col)]
            row = conn.execute(select(*cols).select_from(table)).one()
            where = _synthetic_filter(table)
            synthetic = None if where is None else conn.execute(
                select(func.count()).select_from(table).where(where)).scalar_one()
            counts[table.name] = (row[0], synthetic, *(row[1:] if time_col is not None else (None, None)))
    return counts


def table_lines(rows: list[list[str]], header: list[str], *, rule: bool = True) -> list[str]:
    """Aligned columns: the header, a rule of dashes under it (``rule``), then the rows."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()  # noqa: E731
    return [line(header), *([line(["-" * w for w in widths])] if rule else []), *(line(r) for r in rows)]


def print_summary(engine: Engine) -> None:
    counts = table_counts(engine)
    print(f"\nWarehouse: {engine.url.render_as_string(hide_password=True)}")
    print(f"{'table':<28} {'rows':>8} {'synthetic':>9}  {'from':<19}  {'to':<19}")
    for name, (rows, synthetic, lo, hi) in counts.items():
        synth = "-" if synthetic is None else str(synthetic)
        print(f"{name:<28} {rows:>8} {synth:>9}  {str(lo or '-')[:19]:<19}  {str(hi or '-')[:19]:<19}")
    total_synthetic = sum(c[1] or 0 for c in counts.values())
    if total_synthetic:
        print(f"\nNOTE: {total_synthetic} rows come from the offline sandbox: SYNTHETIC data (prices, macro, "
              "on-chain, news), not market data. Do not train or trade on them.")
    features = counts.get(schema.ml_features_materialized.name, (0,))[0]
    print(f"\n{schema.ml_features_materialized.name}: {len(schema.FEATURE_COLUMNS)} feature columns; "
          "rows with values, per family:")
    for family, rows in feature_coverage(engine).items():
        print(f"  {family:<36} {rows:>8} / {features}")
    _print_universe(engine, features)
    with engine.connect() as conn:
        synthetic_models = conn.execute(select(func.count()).select_from(schema.crypto_sentiment_data).where(
            schema.crypto_sentiment_data.c.model_id.like("synthetic/%"))).scalar_one()
    if synthetic_models:
        print(f"\nNOTE: {synthetic_models} sentiment scores come from tiny RANDOM models built offline "
              "(synthetic/tiny-random-*): the code path is real, the scores are NOT meaningful. "
              "Set CRYPTOETL_CRYPTOBERT_PATH / CRYPTOETL_FINBERT_PATH to real models (docs/SENTIMENT.md).")
    print("\nExample query for ML engineers:\n")
    print(EXAMPLE_QUERY + ";\n")
    with engine.connect() as conn:
        result = conn.execute(text(EXAMPLE_QUERY))
        headers = list(result.keys())
        rows = result.fetchall()
    for line in table_lines([[_fmt(v) for v in r] for r in rows], headers, rule=False):
        print(line)
    if not rows:
        print("(no rows yet)")


def unscored_days(engine: Engine, start: datetime, end: datetime) -> dict[date, int]:
    """{day: articles published in [start, end) that no model scored}."""
    n, s = schema.crypto_news, schema.crypto_sentiment_data
    scored = select(s.c.article_id).where(s.c.article_id == n.c.article_id).exists()
    with engine.connect() as conn:
        rows = conn.execute(select(n.c.published_at).where(
            n.c.published_at >= to_naive_utc(start), n.c.published_at < to_naive_utc(end), ~scored)).scalars()
        days = [value.date() if isinstance(value, datetime) else date.fromisoformat(str(value)[:10]) for value in rows]
    return dict(Counter(days))


def _print_universe(engine: Engine, features: int) -> None:
    """The universe: coins, colliding tickers keyed apart, the latest snapshot, rows still in warm-up."""
    c, s, f = schema.coins, schema.universe_snapshots, schema.ml_features_materialized
    with engine.connect() as conn:
        coins = conn.execute(select(func.count()).select_from(c)).scalar_one()
        apart = conn.execute(select(func.count()).select_from(c).where(c.c.symbol != c.c.ticker)).scalar_one()
        latest = conn.execute(select(func.max(s.c.known_at))).scalar()
        members = conn.execute(select(func.count()).select_from(s).where(s.c.known_at == latest)).scalar_one()
        warming = conn.execute(select(func.count()).select_from(f).where(f.c.warmup_complete.is_(False))).scalar_one()
        ranked = conn.execute(select(func.count()).select_from(f).where(f.c.universe_rank.is_not(None))).scalar_one()
    print(f"\nUniverse: {coins} coins in the registry ({apart} keyed apart from a ticker another coin holds); "
          f"latest snapshot {str(latest or '-')[:19]} UTC: {members} coins")
    print(f"  feature rows still in warm-up (warmup_complete false): {warming} / {features}; with a universe "
          f"rank known at their hour: {ranked} / {features} (ranks start with the first snapshot)")


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)[:19] if value is not None else "NULL"
