"""
### universe_coingecko

Takes the universe's **daily snapshot** from CoinGecko `/coins/markets` into
**`universe_snapshots`**: each coin's market-cap rank, market cap and price, stamped with the
time of the call (`known_at`). New coins get their permanent warehouse key in **`coins`**
(a ticker another coin holds is keyed apart, e.g. `UNI-3F2A`; keys never move).

- `CRYPTOETL_UNIVERSE=top:N`: the top N by market cap (250 a call). The price, indicator and
  feature steps then load every coin of a snapshot, and keep loading one that left for
  `CRYPTOETL_UNIVERSE_RETAIN_DAYS`. Its log lists the coins that joined, with the
  `airflow backfill create` command that loads their history.
- a universe file (the default, 10 coins): checks that CoinGecko lists every id of the file,
  and records their ranks.

**No catch-up, no backfill:** a snapshot is what was known when it was taken, so the past
cannot be snapshotted later; a rerun of a day keeps that day's first snapshot. ML engineers
select "the top 100 as known at T" from it (docs/DATA_DICTIONARY.md).

**When it fails:** an id of the universe file that CoinGecko does not list, or a file edited
so that a key would move to another coin, fails the task with the ids named.
"""

from cryptoetl.airflow.dag_factory import source_dag

dag = source_dag(source="coingecko", step="universe", cron="0 0 * * *", doc_md=__doc__)
