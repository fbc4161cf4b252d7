"""
### ml_features

Rebuilds **`ml_features_materialized`**: one row per symbol per hour with a price, 70 features,
every value knowable at that hour: price, market cap, volume, 1h/24h/7d returns, every technical
indicator, every FRED series as of its release (with its age), the latest on-chain day its source
has published (the day's end + a publication delay), and news sentiment (CryptoBERT, FinBERT)
over 24 h and 7 d. This is the table ML engineers
query; see docs/DATA_DICTIONARY.md for every column and its timing rule.

**Triggered by** the asset events of `technical_indicators` (which follow every price load),
`macro_indicators`, `crypto_onchain_data` and `crypto_sentiment_data` (which follows every news
load), for exactly the intervals that changed plus how far each input reaches: 120 days after
a macro change, 8 days after on-chain, 7 days after sentiment. Re-runs and backfills upstream
flow through with no manual clearing. A daily run at 01:00 UTC also rebuilds the previous day.

**Backfill directly:**
`airflow backfill create --dag-id ml_features --from-date 2026-01-01 --to-date 2026-01-31`.

**When it fails:** safe to retry; each interval is replaced in one transaction.
"""

from cryptoetl.airflow.dag_factory import derived_dag

dag = derived_dag(step="features", cron="0 1 * * *", doc_md=__doc__)
