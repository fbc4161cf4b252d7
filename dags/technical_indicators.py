"""
### technical_indicators

Computes SMA 20/50, EMA 12/26, RSI 14, MACD (12/26/9) with signal and histogram, and
Bollinger bands (20, 2σ) with the `ta` library into **`technical_indicators`**.

**Triggered by** `price_data_real` asset events: it rebuilds exactly the intervals the
price runs wrote, plus the following 720 h (a changed price moves later EMAs), so re-runs
and backfills of prices flow through with no manual clearing. A daily run at 00:30 UTC
also rebuilds the whole hours around its data interval (yesterday 00:00 to today 01:00), so
the DAG stays useful, and backfillable, on its own.

Each run reads a fixed 720-hour warm-up before its interval, so a 10-day backfill, ten
1-day runs or overlapping chunks give the same values (to 1e-9 relative).

**Backfill directly** (e.g. after changing indicator code):
`airflow backfill create --dag-id technical_indicators --from-date 2026-01-01 --to-date 2026-01-31`.

**When it fails:** usually the warehouse is unreachable; the run is safe to retry, it
replaces its interval in one transaction.
"""

from cryptoetl.airflow.dag_factory import derived_dag

dag = derived_dag(step="technical", cron="30 0 * * *", doc_md=__doc__)
