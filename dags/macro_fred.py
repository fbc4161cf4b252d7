"""
### macro_fred

Loads the FRED/ALFRED macro series listed in `include/cryptoetl/macro_series.json` (or the file named
by `CRYPTOETL_MACRO_SERIES`; add a series there, no code) into **`macro_indicators`**:
unemployment, CPI, real GDP growth, fed funds (monthly and daily), 10-year Treasury, VIX, broad
dollar index, WTI oil, and gold as the BLS *import price index for nonmonetary gold* (IR14270:
a monthly index, not a USD spot price; FRED dropped the LBMA gold prices in 2022).

**Interval = knowledge time.** A run for [start, end) writes the values that *became known* in
that window, each with `known_at` (UTC, from when a model may use it) and `known_at_rule`:
revised monthly/quarterly series keep every ALFRED vintage (`realtime_start` = vintage date, a
revision is a new row, the first release is kept); daily market series use the latest value with
a documented publication lag in US business days. `known_at` = that date + 30 h (06:00 UTC the next
day). Join "latest value with `known_at <= T`" for point-in-time features.

**Backfill:** `airflow backfill create --dag-id macro_fred --from-date 2026-01-01 --to-date 2026-01-31`
(add `--reprocess-behavior completed` to reload). Each run replaces exactly the rows known in its
window, so backfills in any chunking give the same rows as daily runs, and nothing learned later
leaks into an earlier window.

**Keys & limits:** `FRED_API_KEY` (from the `data-collection-secrets` Secret); a missing key
fails the task when it runs, never the DAG parse. FRED allows 120 requests/min: the `fred`
pool and client-side spacing keep under it; HTTP 429 honours `Retry-After`, 5xx/timeouts retry with
backoff.

**When it fails:** the log names the series. If any series fails (HTTP error after retries,
malformed or drifted payload), nothing is written for the interval and Airflow retries. An empty
answer never erases rows already loaded. For a daily series, a business day whose observations
FRED has not published yet fails the run ("FRED is late or lag_business_days is too short"):
retry later or raise that series' lag. FRED's "." is stored as NULL, never 0.
"""

from cryptoetl.airflow.dag_factory import source_dag

dag = source_dag(source="fred", cron="0 0 * * *", doc_md=__doc__)
