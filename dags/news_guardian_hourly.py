"""
### news_guardian_hourly

Keeps **`crypto_news`** fresh between the daily runs of `news_guardian`: each run loads the
articles published in the hour that just ended, with the same step and the same rows the daily run
writes for them, so `news_sentiment` scores them and the 24 h / 7 d sentiment windows of
`ml_features` include them within the hour. No catch-up and no backfill: history is
`news_guardian`'s (see its docs for keys and limits).

**When it fails:** like `news_guardian`; the daily run loads the same hours again.
"""

from cryptoetl.airflow.dag_factory import source_dag

dag = source_dag(source="guardian", step="news_guardian_hourly", cron="0 * * * *", doc_md=__doc__)
