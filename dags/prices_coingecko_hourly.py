"""
### prices_coingecko_hourly

Keeps **`price_data_real`** fresh between the daily runs of `prices_coingecko`: each run loads the
hours that just ended, with the same code and the same rows the daily run writes for them (it only
calls CoinGecko for the points landed since the last call: one call per coin). Emits the
`price_data_real` asset, so `technical_indicators` and then `ml_features` rebuild those hours: a
feature row is queryable a few minutes after its hour ends instead of the next day.

**Cadence** (below, computed at parse time from `COINGECKO_API_PLAN`, its rate and monthly budget
and the number of coins): hourly where the quota allows it, else every few hours, else off (the
daily DAG alone loads the prices). No catch-up and no backfill: history is `prices_coingecko`'s.

**When it fails:** like `prices_coingecko`; the next run, or the daily run, loads the hours again.
"""

from cryptoetl.airflow.dag_factory import source_dag
from cryptoetl.config import Settings
from cryptoetl.sources.coingecko import intraday_cron

cron, why = intraday_cron(Settings.from_env())
dag = source_dag(source="coingecko", step="prices_hourly", cron=cron, doc_md=f"{__doc__}\n**This deployment:** {why}.")
