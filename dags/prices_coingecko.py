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
`data-collection-secrets` Secret. The public and demo plans reach the last 365 days: an older day
fails before any call. Calls go by aligned 90-day blocks landed in the warehouse
(`coingecko_chart_points`), so the runs of a backfill share them: about one call per coin per 90
days. Every task shares one call rate (`COINGECKO_RATE_PER_MINUTE`, booked in the warehouse) and
`COINGECKO_MONTHLY_CALLS` is checked before the first call. A `Retry-After` over 60 s fails the
task at once for Airflow to retry, instead of sleeping in a pool slot.

**When it fails:** the log names the coin and HTTP status. If any coin fails, the whole day is
rejected and nothing is written (a partial day would look complete downstream); the blocks already
landed are kept, so the retry pays only for the rest. Airflow retries with exponential backoff.
`python -m cryptoetl run prices --refetch ...` calls CoinGecko again for landed blocks.
"""

from cryptoetl.airflow.dag_factory import source_dag

dag = source_dag(source="coingecko", cron="0 0 * * *", doc_md=__doc__)
