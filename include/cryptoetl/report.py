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


def table_counts(engine: Engine) -> dict[str, tuple[int, object, object]]:
    """{table: (rows, min time, max time)} for every warehouse table."""
    counts = {}
    with engine.connect() as conn:
        for table in schema.metadata.sorted_tables:
            time_col = next((table.c[n] for n in ("time", "published_at", "date", "observation_date")
                             if n in table.c), None)
            cols = [func.count()]
            if time_col is not None:
                cols += [func.min(time_col), func.max(time_col)]
            row = conn.execute(select(*cols).select_from(table)).one()
            counts[table.name] = (row[0], *(row[1:] if time_col is not None else (None, None)))
    return counts


def print_summary(engine: Engine) -> None:
    counts = table_counts(engine)
    synthetic = 0
    with engine.connect() as conn:
        synthetic = conn.execute(
            select(func.count()).select_from(schema.price_data_real).where(
                schema.price_data_real.c.source != "coingecko")
        ).scalar_one()
    print(f"\nWarehouse: {engine.url.render_as_string(hide_password=True)}")
    print(f"{'table':<28} {'rows':>8}  {'from':<19}  {'to':<19}")
    for name, (rows, lo, hi) in counts.items():
        print(f"{name:<28} {rows:>8}  {str(lo or '-')[:19]:<19}  {str(hi or '-')[:19]:<19}")
    if synthetic:
        print(f"\nNOTE: {synthetic} price rows come from the offline sandbox: SYNTHETIC data, "
              "not market prices. Do not train or trade on them.")
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
