"""
### news_rss

Stores the **current** items of the RSS feeds (`CRYPTOETL_RSS_FEEDS`, default CoinDesk and
Cointelegraph; with `RSS_BASE_URL` set, each feed is read from `{RSS_BASE_URL}/{name}.xml`) in
**`crypto_news`** (+ `crypto_news_mentions`, `crypto_news_sightings`, source `rss:<feed>`).

**This DAG cannot backfill.** An RSS feed only returns its latest items (about 20), so a run
for a past interval would not see that interval's articles. The DAG runs hourly with
`catchup=False` and `max_active_runs=1`; `airflow backfill create` on it would only store
today's items again. Its rows are **not interval-scoped**: each run upserts the items the feeds
carry now, whatever their publication time, and never deletes older ones; running it twice
stores nothing twice. History comes from `news_guardian` and `news_cryptopanic`; a gap of
more than a few hours between runs can miss items of busy feeds.

An article also delivered by the Guardian or CryptoPanic is stored once (same canonical URL
id; priority guardian > rss > cryptopanic).

**When it fails:** if any feed fails (HTTP error after retries, truncated or not well-formed XML,
items without `pubDate`), nothing is written for any feed; the next hourly run retries. A feed
with no items is logged and skipped. No key is needed.
"""

from cryptoetl.airflow.dag_factory import source_dag

dag = source_dag(source="rss", cron="0 * * * *", doc_md=__doc__)
