"""
### data_health

Every hour, looks at the last `CRYPTOETL_HEALTH_DAYS` days (default 7) of the warehouse and reports:

- every missing **(coin, hour)** in `price_data_real`, `technical_indicators` and `ml_features_materialized`
  (CoinGecko's own short gaps, where it has no point, are counted apart and never refilled);
- every missing **day** of macro values, on-chain totals, news per source and sentiment scores;
- every table whose newest row is older than its **freshness target**.

The log shows a table of holes with the exact `airflow backfill create` command for each. When
`CRYPTOETL_AIRFLOW_API_URL` is set, it creates those backfills itself through `/api/v2/backfills`:
at most `CRYPTOETL_HEAL_MAX_INTERVALS` daily intervals a run, never a second one while a backfill of
that DAG runs, with a doubling wait between attempts and a give-up after 8 (recorded in
`data_health_actions` and shown on the **Data health** page).

**Red** means a person is needed: a table is stale, or a hole could not be refilled.

By hand: `python -m cryptoetl health --start 2026-01-01 --end 2026-01-08 [--heal]`.
"""

from cryptoetl.airflow.dag_factory import health_dag

dag = health_dag(cron="0 * * * *", doc_md=__doc__)
