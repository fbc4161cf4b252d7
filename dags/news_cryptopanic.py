"""
### news_cryptopanic

Loads CryptoPanic posts **published in the data interval** (daily, 00:00–24:00 UTC) into
**`crypto_news`** (+ `crypto_news_mentions`, `crypto_news_sightings`). Real posts carry no
`original_url`, only CryptoPanic's page, the publisher's domain and the title: a post is the same
article as a Guardian or RSS one with the same domain and normalised title within 6 hours (the
story rule, `loaders/news.py`), and is then stored once; CryptoPanic has the lowest priority
(guardian > rss > cryptopanic), so the stored copy does not depend on the order the DAGs ran in.

**Backfill:** `airflow backfill create --dag-id news_cryptopanic --from-date 2026-01-01 --to-date 2026-01-31`.
The API has no date filter: the client pages back from the newest post until it passes the
interval start. If the plan's history ends before that, the run fails with
`CryptoPanicHistoryError` (the interval cannot be loaded from CryptoPanic) instead of writing a
partial day; use `news_guardian` for older history. Reruns are idempotent and only ever replace
CryptoPanic's own rows of the interval.

**Keys:** `CRYPTOPANIC_API_KEY` (the `auth_token`). The DAG exists whether or not a key is
configured; without one every run fails with a message naming `CRYPTOPANIC_API_KEY` (checked
when the task runs, never at parse time). Keep the DAG paused if you have no token. Calls are
spaced to `CRYPTOPANIC_RATE_PER_MINUTE`, 429 honours `Retry-After`; pool `cryptopanic`.

**When it fails:** if any page fails (HTTP error after retries, malformed or drifted payload),
nothing is written and the interval keeps its previous rows; Airflow retries.
"""

from cryptoetl.airflow.dag_factory import source_dag

dag = source_dag(source="cryptopanic", cron="0 0 * * *", doc_md=__doc__)
