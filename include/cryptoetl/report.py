"""The end-of-run summary: rows per table and one example query with its result."""

from __future__ import annotations

from sqlalchemy import Engine, func, select, text

from cryptoetl.warehouse import schema

EXAMPLE_QUERY = """\
SELECT symbol, time, price, return_24h, rsi_14, macd_hist, bb_width
FROM ml_features_materialized
WHERE symbol = 'BTC'
ORDER BY time DESC
LIMIT 5"""


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
            time_col = next((table.c[n] for n in ("time", "published_at", "date", "observation_date")
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
    print("\nExample query for ML engineers:\n")
    print(EXAMPLE_QUERY + ";\n")
    with engine.connect() as conn:
        result = conn.execute(text(EXAMPLE_QUERY))
        headers = list(result.keys())
        rows = result.fetchall()
    widths = [max(len(h), *(len(_fmt(r[i])) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    for r in rows:
        print("  ".join(_fmt(v).ljust(w) for v, w in zip(r, widths, strict=True)))
    if not rows:
        print("(no rows yet)")


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)[:19] if value is not None else "NULL"
