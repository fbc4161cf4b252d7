"""
### news_guardian

Loads the Guardian Open Platform articles **published in the data interval** (daily,
00:00–24:00 UTC) into **`crypto_news`** (+ `crypto_news_mentions`, `crypto_news_sightings`).
Two searches per interval: crypto (the configured coins' names plus crypto keywords) and
general market/business/economy news (section `business`), so that FinBERT has
general-market articles. Each article is tagged with the symbols it mentions and a category
(`crypto` | `general`); its id is the sha256 of its canonical URL, so an article also delivered
by CryptoPanic or an RSS feed is stored once (the Guardian's copy wins: priority guardian >
rss > cryptopanic, whatever order the runs happened in).

**Backfill:** `airflow backfill create --dag-id news_guardian --from-date 2026-01-01 --to-date 2026-01-31`
(add `--reprocess-behavior completed` to reload). A run replaces only the Guardian's own
sightings of its interval, so reruns are idempotent, any chunking gives the same rows, and
other sources' articles are never deleted.

**Keys & limits:** `GUARDIAN_API_KEY` (required; a missing key fails the task when it runs,
naming the setting). A developer key allows 1 call/s and 500 calls/day: the client spaces
calls (`GUARDIAN_RATE_PER_MINUTE`, default 60), honours `Retry-After`, and the `guardian` pool
runs one task at a time. A daily run costs about 2 calls (200 results per page); a long
backfill spends the daily quota quickly, so backfill in chunks of a few months per day.

**When it fails:** if either search or any page fails (HTTP error after retries, malformed or
drifted payload), nothing is written and the interval keeps its previous rows; Airflow retries.
An empty answer where articles were loaded before is refused (`SourceDataMissing`) instead of
erasing them.
"""

from cryptoetl.airflow.dag_factory import source_dag

dag = source_dag(source="guardian", cron="0 0 * * *", doc_md=__doc__)
