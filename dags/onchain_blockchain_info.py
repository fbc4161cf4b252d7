"""
### onchain_blockchain_info

Loads **BTC daily on-chain totals** from the blockchain.info charts API
(`/charts/{chart}?start=&timespan=&format=json&sampled=false`) into **`crypto_onchain_data`**
(view `onchain_metrics`), one row per completed UTC day, `symbol = 'BTC'`, `data_source` =
`blockchain.info`. Columns: transactions, unique addresses, estimated transfer volume (USD),
output volume (BTC), fees (BTC and USD), miners' revenue (USD), hash rate (TH/s), difficulty,
average block size (bytes). Metrics blockchain.info does not have (gas, new addresses, block
count) stay NULL. ETH rows are never touched.

**Interval:** daily `[00:00, 24:00)` UTC. The source publishes and revises a day's totals
hours after it ends: `complete_at` (view: `available_at`), from which features use the day, is
the next midnight + `PUBLICATION_DELAY` (6 h, `sources/blockchain_info.py`). Intervals must be midnight-aligned;
a manual run reaching into today loads only the days that have ended.

**Backfill:** `airflow backfill create --dag-id onchain_blockchain_info --from-date 2026-01-01 --to-date 2026-01-31`
(add `--reprocess-behavior completed` to reload). Each run replaces exactly its days, so any
chunking gives the same rows.

**Limits:** no key. blockchain.info asks for at most one call per 10 s: the client spaces calls
(`BLOCKCHAIN_INFO_RATE_PER_MINUTE`, default 6; 10 charts per run), honours `Retry-After` on 429,
and the `blockchain_info` pool caps concurrent runs.

**When it fails:** all or nothing. If any chart fails (HTTP error after retries, malformed or
drifted payload, or a day the chart has not published yet), the task fails, nothing is
written and the interval keeps its previous rows; Airflow retries. The log names the chart
and the missing days.
"""

from cryptoetl.airflow.dag_factory import source_dag

dag = source_dag(source="blockchain_info", cron="0 0 * * *", doc_md=__doc__)
