"""
### ml_features

Rebuilds **`ml_features_materialized`**: one row per symbol per hour with a price, with
price, market cap, volume, 1h/24h/7d returns and every technical indicator. This is the
table ML engineers query; see docs/DATA_DICTIONARY.md for every column.

**Triggered by** `technical_indicators` asset events (which follow every price load), for
exactly the intervals that changed plus the following 168 h (7-day returns look back a
week). A daily run at 01:00 UTC also rebuilds the previous 24 hours.

**Backfill directly:**
`airflow backfill create --dag-id ml_features --from-date 2026-01-01 --to-date 2026-01-31`.

**When it fails:** safe to retry; each interval is replaced in one transaction.
"""

from cryptoetl.airflow.dag_factory import derived_dag

dag = derived_dag(dag_id="ml_features", step="features", cron="0 1 * * *", doc_md=__doc__)
