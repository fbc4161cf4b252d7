"""
### news_sentiment

Scores the **`crypto_news`** articles of each changed interval into **`crypto_sentiment_data`**:
CryptoBERT (`ElKulako/cryptobert`) for `crypto` articles, FinBERT (`ProsusAI/finbert`) for
`general` ones. For each article and model it stores the class probabilities, the label,
`score = P(positive|bullish) - P(negative|bearish)` in [-1, 1], the model id and its revision.

**Triggered by** `crypto_news` asset events: every news run (Guardian, CryptoPanic, RSS, and
their backfills) is followed by the scoring of exactly the intervals it wrote. A daily run at
02:00 UTC also scores the previous day. `ml_features` follows through this DAG's own events.

**Scored once per model revision:** re-runs and backfills only score articles with no score for
the current model revision (or whose text changed). To score again on purpose:
`python -m cryptoetl run sentiment --interval 2026-01-01/2026-02-01 --rescore`.

**Models** are never downloaded at run time. The pod runs the sentiment image (torch and both
models baked in at build time, `CRYPTOETL_SENTIMENT_IMAGE`) with the `sentiment` resource profile
(2 CPUs, 3 GiB). A missing model fails the task with a message naming `CRYPTOETL_CRYPTOBERT_PATH`
/ `CRYPTOETL_FINBERT_PATH`. See docs/SENTIMENT.md.

**Backfill directly** (e.g. after a model upgrade):
`airflow backfill create --dag-id news_sentiment --from-date 2026-01-01 --to-date 2026-01-31`.

**When it fails:** nothing is written (one transaction); safe to retry.
"""

from cryptoetl.airflow.dag_factory import derived_dag

dag = derived_dag(step="sentiment", cron="0 2 * * *", doc_md=__doc__)
