"""
### prices_coingecko

Loads hourly **price, market cap and 24h volume** for every symbol in the universe from
CoinGecko `/coins/{id}/market_chart/range` into **`price_data_real`**, one daily data
interval per run (00:00–24:00 UTC). Emits the `price_data_real` asset, which triggers
`technical_indicators` and then `ml_features`.

**Backfill:** `airflow backfill create --dag-id prices_coingecko --from-date 2026-01-01 --to-date 2026-01-31`
(or Trigger → Backfill in the UI). Add `--reprocess-behavior completed` to reload days
already loaded: each run replaces exactly its day, so nothing is duplicated, and the
derived DAGs rebuild the affected hours by themselves.

**Keys & limits:** `COINGECKO_API_PLAN` = public | demo | pro, `COINGECKO_API_KEY` from the
`data-collection-secrets` Secret. Demo keys only reach the last 365 days. The `coingecko`
pool caps concurrent calls; the client also spaces requests to the plan's per-minute limit
and honours `Retry-After` on HTTP 429.

**When it fails:** the log names the symbol and HTTP status. If any symbol fails, the
whole day is rejected and nothing is written (a partial day would look complete
downstream); Airflow retries with exponential backoff.
"""

from cryptoetl.airflow.dag_factory import source_dag

dag = source_dag(source="coingecko", cron="0 0 * * *", doc_md=__doc__)
