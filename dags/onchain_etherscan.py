"""
### onchain_etherscan

Loads **ETH daily on-chain totals** from the Etherscan v2 API (`chainid=1`) into
**`crypto_onchain_data`** (view `onchain_metrics`), one row per completed UTC day,
`symbol = 'ETH'`, `data_source` = `etherscan-pro` or `etherscan-free`. BTC rows are never touched.

**Keys & plans:** `ETHERSCAN_API_KEY` is required (Etherscan v2 wants a key on every call);
a missing key fails the task when it runs with a message naming `ETHERSCAN_API_KEY`, never
at parse time. `ETHERSCAN_API_PLAN`:
- `pro` (Standard plan and above): the PRO daily statistics: transactions, new addresses,
  fees (ETH), average gas price (gwei), block count, average block size (bytes), gas used,
  network utilization.
- `free` (default; also Lite): the daily statistics are PRO-only, so only `block_count` is
  loaded (from the free `getblocknobytime` at each midnight); every other metric stays NULL.
A free key with `ETHERSCAN_API_PLAN=pro` fails with a message naming `ETHERSCAN_API_PLAN`;
an invalid key fails with one naming `ETHERSCAN_API_KEY`. ETH has no hash rate, difficulty
or USD fees here: NULL, never 0.

**Interval:** daily `[00:00, 24:00)` UTC. The source publishes and revises a day's totals
hours after it ends: `complete_at` (view: `available_at`), from which features use the day, is
the next midnight + `PUBLICATION_DELAY` (6 h, `sources/etherscan.py`). Intervals must be midnight-aligned;
a manual run reaching into today loads only the days that have ended.

**Backfill:** `airflow backfill create --dag-id onchain_etherscan --from-date 2026-01-01 --to-date 2026-01-31`
(add `--reprocess-behavior completed` to reload, e.g. after upgrading to a PRO key). Each run
replaces exactly its days, so any chunking gives the same rows.

**Limits:** free keys get 3 calls/s, PRO plans 10-30 calls/s. The client spaces calls
(`ETHERSCAN_RATE_PER_MINUTE`), retries Etherscan's HTTP-200 "Max calls per sec rate limit
reached" answers with exponential backoff, honours `Retry-After` on 429, and fails at once on
the daily limit (it resets at 00:00 UTC). The `etherscan` pool caps concurrent runs.

**When it fails:** all or nothing. If any action fails or a day is missing, the task fails,
nothing is written and the interval keeps its previous rows; Airflow retries.
"""

from cryptoetl.airflow.dag_factory import source_dag

dag = source_dag(source="etherscan", cron="0 0 * * *", doc_md=__doc__)
