"""News sources (Guardian, CryptoPanic, RSS) against the sandbox (synthetic data), the tagging
rules, and the crypto_news writes on SQLite and MariaDB."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
import requests
from helpers import dump, settings_for, utc
from sqlalchemy import delete, func, select

from cryptoetl.config import UNIVERSE, ConfigError
from cryptoetl.intervals import Interval
from cryptoetl.loaders import news as loader
from cryptoetl.news_tagging import CRYPTO, GENERAL, NewsItem, Tagger, article_id, canonical_url, clean_text
from cryptoetl.sandbox.common import EPOCH
from cryptoetl.sandbox.cryptopanic import CRYPTOPANIC_OUTLETS, CryptoPanicApi, _post
from cryptoetl.sandbox.news import articles_between
from cryptoetl.sources.cryptopanic import CryptoPanicClient, CryptoPanicHistoryError
from cryptoetl.sources.guardian import GuardianClient, GuardianQuery, default_queries
from cryptoetl.sources.http import SourceError, SourcePayloadError, SourceRateLimited
from cryptoetl.sources.rss import RssClient, feed_urls
from cryptoetl.step import SourceDataMissing, StepContext
from cryptoetl.steps import get_step
from cryptoetl.warehouse import schema

NOW = utc(2026, 3, 10, 12, 34, 56)
D = [utc(2026, 3, d) for d in range(6, 11)]  # midnights of 6..10 March
H = timedelta(hours=1)
GU_KEY, CP_KEY = "gu-test-key-123", "cp-test-token-456"
TABLES = (schema.crypto_news, schema.crypto_news_mentions, schema.crypto_news_sightings)
CRYPTO_Q = GuardianQuery("crypto", "bitcoin OR ethereum OR crypto")


@pytest.fixture
def news_sandbox(sandbox_clean):
    """The session sandbox with its clock frozen at NOW, so feeds and pages are deterministic."""
    saved = sandbox_clean.now, sandbox_clean.timeout_sleep
    sandbox_clean.now = NOW.timestamp
    yield sandbox_clean
    sandbox_clean.now, sandbox_clean.timeout_sleep = saved


def fast(slept=None, **kwargs):
    return {"rate_per_minute": 60_000_000, "sleep": slept.append if slept is not None else (lambda s: None), **kwargs}


def guardian(sb, slept=None, **kwargs):
    return GuardianClient(sb.urls()["guardian"], api_key=GU_KEY, **fast(slept, **{"page_size": 7, **kwargs}))


def cryptopanic(sb, slept=None, **kwargs):
    return CryptoPanicClient(sb.urls()["cryptopanic"], api_key=CP_KEY, **fast(slept, **kwargs))


def rss(slept=None, **kwargs):
    return RssClient(**fast(slept, **kwargs))


def settings(engine, sb, **env):
    env = sb.env() | {"GUARDIAN_API_KEY": GU_KEY, "CRYPTOPANIC_API_KEY": CP_KEY} | env
    return settings_for(engine, sb, source_env={k: v for k, v in env.items() if v})


def context(engine, sb, clients=None):
    return StepContext(settings(engine, sb), engine, clients={
        GuardianClient: guardian(sb), CryptoPanicClient: cryptopanic(sb), RssClient: rss(), **(clients or {})})


def snapshot(engine):
    return [dump(engine, t) for t in TABLES]


def clear(engine):
    with engine.begin() as conn:
        for table in TABLES:
            conn.execute(delete(table))


def run(ctx, step, start, end):
    return get_step(step).execute(ctx, Interval(start, end))


# -- tagging -------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ("Bitcoin rallies as ETF inflows climb", ["BTC"]),
    ("bitcoins moved to exchanges; BTC/USD at a high", ["BTC"]),
    ("BITCOIN AND LINK SURGE", ["BTC", "LINK"]),
    ("Ethereum's upgrade ships", ["ETH"]),
    ("ETH slides while $sol jumps", ["ETH", "SOL"]),
    ("Solana (SOL) and Cardano (ADA) lead altcoins", ["ADA", "SOL"]),
    ("Polkadot (DOT) and Chainlink's LINK token", ["DOT", "LINK"]),
    ("Avalanche (AVAX) network upgrade", ["AVAX"]),
    ("Dogecoin jumps; DOGE holders cheer", ["DOGE"]),
    ("XRP climbs as Ripple wins in court", ["XRP"]),
    ("Ether and stablecoin volumes rise", ["ETH"]),
    ("Binance Coin holders vote", ["BNB"]),
    # false-positive traps
    ("A new method for measuring inflation", []),
    ("ETH Zurich researchers publish a study", []),
    ("Department of Transportation (DOT) budget rises", []),
    ("Lawsuit under the ADA settled", []),
    ("Click the LINK below to read more", []),
    ("DOGE cuts thousands of federal jobs", []),
    ("An avalanche of profit warnings hits retail shares", []),
    ("Avalanche kills skiers in the Alps", []),
    ("A ripple effect across bond markets", []),
    ("Ripple effects of the rate cut", []),
    ("SOL price tag for a solar panel", []),
    ("Tether the dog to the post; ether was used as an anaesthetic", []),
])
def test_mentions(text, expected):
    assert Tagger(UNIVERSE).mentions(text) == expected


def test_mentions_are_limited_to_configured_symbols_but_category_sees_the_universe():
    tagger = Tagger(UNIVERSE[:2])  # BTC, ETH
    assert tagger.analyse("Cardano rallies (synthetic)") == ([], CRYPTO)
    assert tagger.analyse("Bitcoin and Cardano rally", None) == (["BTC"], CRYPTO)


@pytest.mark.parametrize("text,category", [
    ("Bank of England holds interest rates steady", GENERAL),
    ("US stocks slip as Federal Reserve signals caution", GENERAL),
    ("An avalanche of profit warnings", GENERAL),
    ("Regulators weigh stablecoin rules", CRYPTO),
    ("Crypto exchanges report record volumes", CRYPTO),
    ("Blockchain start-up raises funds", CRYPTO),
    ("$BTC breaks out", CRYPTO),
])
def test_category(text, category):
    assert Tagger(UNIVERSE).category(text) == category


def test_canonical_urls_give_stable_ids():
    base = "https://coindesk.com/markets/2026/03/01/bitcoin-rallies"
    variants = [
        base,
        "HTTPS://WWW.CoinDesk.com/markets/2026/03/01/bitcoin-rallies/",
        "http://www.coindesk.com/markets/2026/03/01/bitcoin-rallies?utm_source=rss&utm_medium=feed#comments",
        "https://coindesk.com:443/markets/2026/03/01/bitcoin-rallies?fbclid=abc&CMP=share",
    ]
    assert {canonical_url(v) for v in variants} == {base}
    assert len({article_id(v) for v in variants}) == 1 and len(article_id(base)) == 64
    # content-selecting parameters and paths stay significant (and are sorted)
    assert canonical_url("https://x.com/a?b=2&a=1&utm_x=3") == "https://x.com/a?a=1&b=2"
    assert article_id(base) != article_id(base + "-2")
    assert article_id("https://x.com/a?id=1") != article_id("https://x.com/a?id=2")
    with pytest.raises(ValueError):
        canonical_url("/relative/path")


def test_clean_text_strips_html_and_keeps_missing_as_none():
    assert clean_text("<p>Bitcoin &amp; <b>Ether</b>\n rally</p>") == "Bitcoin & Ether rally"
    assert clean_text("   ") is None and clean_text(None) is None


# -- clients against the sandbox ---------------------------------------------------------------

def test_guardian_pages_through_results_in_the_interval(news_sandbox):
    client = guardian(news_sandbox, page_size=3)
    before = len(news_sandbox.requests)
    three_days = client.search(CRYPTO_Q, D[0], D[3])
    requests_made = news_sandbox.requests[before:]
    assert len(requests_made) >= 3  # several pages
    q = requests_made[0]["query"]
    assert q["order-by"] == "oldest" and q["show-fields"] == "trailText" and q["api-key"] == GU_KEY
    assert q["from-date"] == "2026-03-05" and q["to-date"] == "2026-03-10"  # one day of margin each side
    assert [r["query"]["page"] for r in requests_made] == [str(p) for p in range(1, len(requests_made) + 1)]
    assert three_days and all(D[0] <= i.published_at < D[3] for i in three_days)
    assert all(i.synthetic and i.title.endswith("(synthetic)") and "utm_" not in i.url for i in three_days)
    day_by_day = [i for d in range(3) for i in client.search(CRYPTO_Q, D[d], D[d + 1])]
    assert day_by_day == three_days


def test_guardian_general_query_serves_general_market_news(news_sandbox):
    general = default_queries(UNIVERSE[:3])[1]
    items = guardian(news_sandbox).search(general, D[0], D[1])
    assert items and {Tagger(UNIVERSE).category(i.title, i.summary) for i in items} == {GENERAL}
    assert news_sandbox.requests[-1]["query"]["section"] == "business"


def test_guardian_without_key_is_401_with_the_real_error_shape(news_sandbox):
    resp = requests.get(news_sandbox.urls()["guardian"] + "/search", params={"q": "bitcoin"}, timeout=5)
    assert resp.status_code == 401 and resp.json() == {"message": "No API key found in request"}


def test_cryptopanic_follows_next_without_leaking_the_token(news_sandbox):
    before = len(news_sandbox.requests)
    items = cryptopanic(news_sandbox).posts(D[2], D[3])
    made = news_sandbox.requests[before:]
    assert len(made) >= 3 and [r["query"].get("page", "1") for r in made] == [str(p) for p in range(1, len(made) + 1)]
    assert all(r["query"]["auth_token"] == CP_KEY and r["path"].endswith("/posts/") for r in made)
    assert items and all(D[2] <= i.published_at < D[3] for i in items)
    assert len({i.article_id for i in items}) == len(items)
    # the real posts' shape: CryptoPanic's own page (tracking parameter dropped), the publisher's
    # domain, no description (NULL, never '')
    assert all(i.url.startswith("https://cryptopanic.com/news/") and "mtm_" not in i.url for i in items)
    assert {i.domain for i in items} == {"coindesk.com", "cointelegraph.com", "decrypt.co", "theguardian.com"}
    assert all(i.summary is None for i in items)
    # pages stop once past the interval start: asking for a later day needs fewer pages
    before = len(news_sandbox.requests)
    cryptopanic(news_sandbox).posts(D[3], D[4])
    assert len(news_sandbox.requests) - before < len(made)


def test_cryptopanic_sandbox_serves_the_real_post_shape(news_sandbox):
    url = news_sandbox.urls()["cryptopanic"] + "/posts/"
    page = requests.get(url, params={"auth_token": CP_KEY, "public": "true", "kind": "news"}, timeout=5).json()
    assert set(page) == {"count", "next", "previous", "results"} and page["count"] >= len(page["results"]) == 20
    posts = page["results"]
    assert not any("original_url" in p or "description" in p for p in posts)
    assert any("currencies" in p for p in posts) and any("currencies" not in p for p in posts)
    assert all(p["source"]["domain"] == p["domain"] and p["url"].startswith("https://cryptopanic.com/news/")
               and {"kind", "votes", "slug", "created_at"} <= set(p) for p in posts)


def test_cryptopanic_uses_original_url_and_description_when_a_plan_sends_them():
    post = {"id": 7, "title": "Bitcoin &amp; Ether rally", "published_at": "2026-03-06T10:00:00Z",
            "url": "https://cryptopanic.com/news/7/x?mtm_campaign=API-OFA", "domain": "coindesk.com",
            "original_url": "https://www.coindesk.com/markets/a/?utm_source=cryptopanic", "description": "<p>Up.</p>"}
    _, item = CryptoPanicClient._item(post, "test", False)
    assert (item.url, item.summary, item.domain, item.title) == ("https://coindesk.com/markets/a", "Up.", None,
                                                                 "Bitcoin & Ether rally")
    del post["original_url"], post["description"]
    post["source"] = {"title": "CoinDesk", "region": "en", "domain": "www.coindesk.com", "path": None}
    _, item = CryptoPanicClient._item(post, "test", False)
    assert (item.url, item.summary, item.domain) == ("https://cryptopanic.com/news/7/x", None, "coindesk.com")
    post["source"], post["domain"] = {"domain": "reddit.com/r/x"}, "r/bitcoin"  # no publisher domain
    assert CryptoPanicClient._item(post, "test", False)[1].domain is None


def test_cryptopanic_history_that_ends_too_early_is_an_error(news_sandbox):
    news_sandbox.now = lambda: EPOCH + 86400  # the sandbox's history starts at EPOCH
    start = utc(2022, 12, 30)
    with pytest.raises(CryptoPanicHistoryError, match="history does not reach back"):
        cryptopanic(news_sandbox).posts(start, start + timedelta(days=1))


def test_rss_feeds_serve_the_latest_items_before_now(sqlite_engine, news_sandbox):
    urls = dict(feed_urls(settings(sqlite_engine, news_sandbox)))
    assert urls == {name: f"{news_sandbox.urls()['rss']}/{name}.xml" for name in ("coindesk", "cointelegraph")}
    items = rss().feed("cointelegraph", urls["cointelegraph"])
    assert len(items) == 20 and all(i.published_at <= NOW for i in items)
    assert all("utm_" not in i.url and i.summary and "<" not in i.summary for i in items)
    # without RSS_BASE_URL the configured feed URLs are used as they are
    production = settings(sqlite_engine, news_sandbox, RSS_BASE_URL="")
    assert feed_urls(production)[0] == ("coindesk", "https://www.coindesk.com/arc/outboundfeeds/rss/")


def test_coindesk_summaries_survive_its_empty_content_and_dc_description(news_sandbox):
    import urllib.request

    url = news_sandbox.urls()["rss"] + "/coindesk.xml"
    with urllib.request.urlopen(url) as resp:  # the sandbox serves the recorded shape
        body = resp.read().decode()
    assert "<content:encoded/><dc:description/></item>" in body
    import feedparser

    assert all(entry.summary == "" for entry in feedparser.parse(body).entries)  # what feedparser alone gives
    items = rss().feed("coindesk", url)
    assert items and all(i.summary and "<" not in i.summary for i in items)


CLIENT_CALLS = {
    "guardian": ("/guardian/", lambda sb, **kw: guardian(sb, **kw).search(CRYPTO_Q, D[1], D[2])),
    "cryptopanic": ("/cryptopanic/", lambda sb, **kw: cryptopanic(sb, **kw).posts(D[3], D[3] + 6 * H)),
    "rss": ("/rss/", lambda sb, **kw: rss(**kw).feed("coindesk", sb.urls()["rss"] + "/coindesk.xml")),
}
DRIFTED_FIELD = {"guardian": "webPublicationDate", "cryptopanic": "published_at", "rss": "pubDate"}


@pytest.mark.parametrize("name", CLIENT_CALLS)
def test_transient_faults_are_retried(news_sandbox, name):
    path, call = CLIENT_CALLS[name]
    expected = call(news_sandbox)
    assert expected
    news_sandbox.timeout_sleep = 0.5
    slept = []
    news_sandbox.set_faults([{"kind": "429", "retry_after": 3, "path_contains": path, "count": 1},
                             {"kind": "500", "path_contains": path, "count": 1},
                             {"kind": "timeout", "path_contains": path, "count": 1}])
    assert call(news_sandbox, slept=slept, timeout=0.2) == expected
    assert [s for s in slept if s >= 0.5] == [3.0, 2.0, 4.0]  # Retry-After, then exponential backoff (attempts 2 and 3)


@pytest.mark.parametrize("name", CLIENT_CALLS)
@pytest.mark.parametrize("kind,error", [("429", SourceRateLimited), ("500", SourceError), ("timeout", SourceError)])
def test_persistent_faults_fail_without_leaking_keys(news_sandbox, name, kind, error):
    path, call = CLIENT_CALLS[name]
    news_sandbox.timeout_sleep = 0.3
    news_sandbox.set_faults([{"kind": kind, "retry_after": 1, "path_contains": path, "count": -1}])
    with pytest.raises(error) as info:
        call(news_sandbox, max_retries=1, timeout=0.1)
    assert name in str(info.value) and GU_KEY not in str(info.value) and CP_KEY not in str(info.value)


@pytest.mark.parametrize("name", CLIENT_CALLS)
def test_malformed_payload_fails_clearly(news_sandbox, name):
    path, call = CLIENT_CALLS[name]
    news_sandbox.set_faults([{"kind": "malformed", "path_contains": path, "count": 1}])
    message = "well-formed" if name == "rss" else "not valid JSON"
    with pytest.raises(SourcePayloadError, match=message):
        call(news_sandbox)


@pytest.mark.parametrize("name", CLIENT_CALLS)
def test_drifted_payload_fails_naming_the_field(news_sandbox, name):
    path, call = CLIENT_CALLS[name]
    news_sandbox.set_faults([{"kind": "drift", "path_contains": path, "count": 1}])
    with pytest.raises(SourcePayloadError, match=DRIFTED_FIELD[name]):
        call(news_sandbox)


@pytest.mark.parametrize("name", CLIENT_CALLS)
def test_empty_payload_is_no_items(news_sandbox, name):
    path, call = CLIENT_CALLS[name]
    news_sandbox.set_faults([{"kind": "empty", "path_contains": path, "count": 1}])
    assert call(news_sandbox) == []


def test_clients_take_their_rate_and_key_from_settings(sqlite_engine, news_sandbox):
    s = settings(sqlite_engine, news_sandbox)
    assert GuardianClient.from_settings(s).min_interval == pytest.approx(1.0)  # developer key: 1 call/s
    assert CryptoPanicClient.from_settings(s).api_key == CP_KEY
    for build, var in ((GuardianClient.from_settings, "GUARDIAN_API_KEY"),
                       (CryptoPanicClient.from_settings, "CRYPTOPANIC_API_KEY")):
        with pytest.raises(ConfigError, match=var):
            build(settings(sqlite_engine, news_sandbox, **{var: ""}))


# -- steps and the warehouse -------------------------------------------------------------------

def test_guardian_backfill_equals_daily_and_overlapping_runs(engine, news_sandbox):
    ctx = context(engine, news_sandbox)
    chunkings = {
        "one 3-day run": [(D[0], D[3])],
        "day by day": [(D[0], D[1]), (D[1], D[2]), (D[2], D[3])],
        "overlapping": [(D[0], D[1] + 12 * H), (D[0] + 12 * H, D[2] + 12 * H), (D[2], D[3]), (D[1], D[2])],
        "hourly runs, then daily": [(D[0] + h * H, D[0] + (h + 1) * H) for h in range(24)] + [(D[1], D[2]),
                                                                                              (D[2], D[3])],
    }
    dumps = {}
    for name, intervals in chunkings.items():
        clear(engine)
        for start, end in intervals:  # an hour is the hourly DAG's run: the same step, hour by hour
            run(ctx, "news_guardian_hourly" if end - start == H else "news_guardian", start, end)
        dumps[name] = snapshot(engine)
    first = dumps["one 3-day run"]
    assert all(d == first for d in dumps.values())
    news, mentions, sightings = first
    assert news and mentions and len(sightings) == len(news)
    assert {row[6] for row in news} == {CRYPTO, GENERAL}  # crypto and general-market articles
    run(ctx, "news_guardian", D[0], D[3])  # idempotent
    assert snapshot(engine) == first


def test_each_source_is_idempotent(engine, news_sandbox):
    ctx = context(engine, news_sandbox)
    for step in ("news_cryptopanic", "news_rss"):
        run(ctx, step, D[3], D[4])
        once = snapshot(engine)
        assert run(ctx, step, D[3], D[4]) > 0
        assert snapshot(engine) == once


def cryptopanic_truth(start, end) -> dict[str, str]:
    """The sandbox's own record of which article each CryptoPanic post stands for: {id of the post's
    CryptoPanic URL: id of the publisher's URL}, for the articles published in [start - 1 h, end)."""
    lo, hi = (start - H).timestamp(), end.timestamp()
    return {article_id(CryptoPanicApi._render(_post(a))["url"]): article_id(a.url)
            for a in articles_between(CRYPTOPANIC_OUTLETS, lo, hi)}


def test_articles_from_several_sources_are_stored_once_whatever_the_order(engine, news_sandbox):
    ctx = context(engine, news_sandbox)
    steps = ("news_guardian", "news_cryptopanic", "news_rss")
    results = []
    for order in list(itertools.permutations(steps))[::2]:  # 3 of the 6 orders
        clear(engine)
        for step in order:
            run(ctx, step, D[2], D[4])
        results.append(snapshot(engine))
    assert all(r == results[0] for r in results)
    news, mentions, sightings = results[0]
    by_article: dict[str, set[str]] = {}
    for source, aid, *_ in sightings:
        by_article.setdefault(aid, set()).add(source)
    stored = {row[0]: row[2] for row in news}
    # Posts carry only CryptoPanic's URL: an article both CryptoPanic and the Guardian or a feed
    # delivered is stored once, under the publisher's URL, from the publisher's copy.
    truth = cryptopanic_truth(D[2], D[4])
    posts = [aid for aid, sources in by_article.items() if sources == {"cryptopanic"}]
    absorbed = {aid: truth[aid] for aid in posts if truth[aid] in by_article}
    alone = [aid for aid in posts if truth[aid] not in by_article]
    assert {next(iter(by_article[a])) for a in absorbed.values()} >= {"guardian", "rss:coindesk", "rss:cointelegraph"}
    assert alone  # e.g. Decrypt's articles: only CryptoPanic carries them
    assert not set(absorbed) & set(stored) and set(absorbed.values()) <= set(stored)
    assert all(stored[a] != "cryptopanic" for a in absorbed.values())
    assert set(alone) <= set(stored) and all(stored[a] == "cryptopanic" for a in alone)
    assert set(stored) == set(by_article) - set(absorbed)  # one row per article
    for aid, sources in by_article.items():
        if aid in stored:
            assert stored[aid] == min(sources, key=loader.source_priority)
    assert {row[0] for row in mentions} <= set(stored)  # mentions only for stored articles
    assert {row[1] for row in mentions} <= {"BTC", "ETH", "SOL"}
    assert all(row[7] for row in news) and all(row[4] != "" for row in news)  # synthetic label, no ''


def test_story_rule_matches_domain_title_and_window_only():
    base = {"published_at": utc(2026, 3, 6, 12).replace(tzinfo=None), "summary": None, "is_synthetic": True,
            "is_trimmed": False}

    def sighting(source, url, title, domain, minutes=0):
        key = NewsItem(url=url, published_at=NOW, title=title, summary=None, domain=domain).story_key
        return {**base, "source": source, "article_id": article_id(url), "url": canonical_url(url), "title": title,
                "story_key": key, "published_at": base["published_at"] + timedelta(minutes=minutes)}

    title, cp = "SEC Drops Case&mdash;UNI Soars!", "https://cryptopanic.com/news"
    publisher = sighting("rss:coindesk", "https://www.coindesk.com/markets/a/", title, None)
    same = sighting("cryptopanic", f"{cp}/1/x?mtm_campaign=API-OFA", "SEC drops case - UNI soars",
                    "www.CoinDesk.com", minutes=-300)
    other_domain = sighting("cryptopanic", f"{cp}/2/x", title, "decrypt.co")
    too_late = sighting("cryptopanic", f"{cp}/3/x", title, "coindesk.com", minutes=6 * 60 + 1)
    stored = loader.stored_rows([publisher, same, other_domain, too_late])
    assert set(stored) == {publisher["article_id"], other_domain["article_id"], too_late["article_id"]}
    assert stored[publisher["article_id"]]["source"] == "rss:coindesk"
    # without the publisher's copy, the post is an article of its own; order never matters
    assert set(loader.stored_rows([too_late, same])) == {same["article_id"], too_late["article_id"]}
    assert loader.stored_rows([same, publisher]) == loader.stored_rows([publisher, same])


class _DroppingGuardian(GuardianClient):
    """Serves the sandbox's answer without the given articles (an article taken down)."""

    def __init__(self, *args, drop=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.drop = set(drop)

    def search(self, query, start, end):
        return [i for i in super().search(query, start, end) if i.article_id not in self.drop]


def test_reloading_a_source_never_deletes_another_sources_articles(engine, news_sandbox):
    ctx = context(engine, news_sandbox)
    run(ctx, "news_guardian", D[2], D[3])
    run(ctx, "news_cryptopanic", D[2], D[3])
    news, mentions, sightings = snapshot(engine)
    truth = {publisher: post for post, publisher in cryptopanic_truth(D[2], D[3]).items()}
    loaded = {(source, aid) for source, aid, *_ in sightings}
    guardian = sorted(aid for source, aid in loaded if source == "guardian")
    shared = [a for a in guardian if ("cryptopanic", truth.get(a)) in loaded]
    guardian_only = [a for a in guardian if ("cryptopanic", truth.get(a)) not in loaded]
    assert shared and guardian_only
    stored = {row[0] for row in news}
    assert set(shared) <= stored and not {truth[a] for a in shared} & stored

    run(ctx, "news_cryptopanic", D[2], D[3])  # a reload of CryptoPanic leaves the Guardian's rows alone
    assert snapshot(engine) == [news, mentions, sightings]

    # the Guardian drops a shared and a Guardian-only article: the shared one falls back to
    # CryptoPanic's copy (under its URL, with its own mentions), the other one is gone with its mentions
    dropping = _DroppingGuardian(news_sandbox.urls()["guardian"], api_key=GU_KEY, drop=[shared[0], guardian_only[0]],
                                 **fast())
    run(StepContext(ctx.settings, engine, clients={GuardianClient: dropping}), "news_guardian", D[2], D[3])
    after = {row[0]: row for row in dump(engine, schema.crypto_news)}
    assert shared[0] not in after and after[truth[shared[0]]][2] == "cryptopanic"
    assert guardian_only[0] not in after and len(after) == len(news) - 1
    tagger = Tagger(ctx.settings.symbols)
    expected_mentions = sorted((aid, s) for aid, row in after.items() for s in tagger.mentions(row[3], row[4]))
    assert dump(engine, schema.crypto_news_mentions) == expected_mentions
    run(ctx, "news_guardian", D[2], D[3])  # the Guardian serves it again: stored once, the Guardian's copy
    assert snapshot(engine) == [news, mentions, sightings]


@pytest.mark.parametrize("step,path", [("news_guardian", "/guardian/"), ("news_cryptopanic", "/cryptopanic/"),
                                       ("news_rss", "/rss/")])
def test_malformed_payload_leaves_the_tables_untouched(engine, news_sandbox, step, path):
    ctx = context(engine, news_sandbox)
    for name in ("news_guardian", "news_cryptopanic", "news_rss"):
        run(ctx, name, D[3], D[4])
    before = snapshot(engine)
    news_sandbox.set_faults([{"kind": "malformed", "path_contains": path, "count": -1}])
    with pytest.raises(SourcePayloadError):
        run(ctx, step, D[3], D[4])
    assert snapshot(engine) == before


class _FaultOnCall(requests.Session):
    """Injects a sandbox fault just before the n-th request: fails a later page/query/feed."""

    def __init__(self, sandbox, n, fault):
        super().__init__()
        self.sandbox, self.n, self.fault, self.calls = sandbox, n, fault, 0

    def get(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.n:
            self.sandbox.set_faults([self.fault])
        return super().get(*args, **kwargs)


@pytest.mark.parametrize("step,n", [("news_guardian", 3), ("news_cryptopanic", 2), ("news_rss", 2)])
def test_a_later_page_query_or_feed_failing_writes_nothing(sqlite_engine, news_sandbox, step, n):
    ctx = context(sqlite_engine, news_sandbox)
    run(ctx, step, D[3], D[4])
    before = snapshot(sqlite_engine)
    session = _FaultOnCall(news_sandbox, n, {"kind": "drift", "count": -1})
    failing = {"news_guardian": {GuardianClient: guardian(news_sandbox, session=session)},
               "news_cryptopanic": {CryptoPanicClient: cryptopanic(news_sandbox, session=session)},
               "news_rss": {RssClient: rss(session=session)}}[step]
    # first rerun the same interval with other data: no page of the new answer may land
    clear(sqlite_engine)
    with pytest.raises(SourcePayloadError):
        run(context(sqlite_engine, news_sandbox, failing), step, D[3], D[4])
    assert snapshot(sqlite_engine) == [[], [], []] and session.calls >= n
    news_sandbox.set_faults([])
    run(ctx, step, D[3], D[4])
    assert snapshot(sqlite_engine) == before


def test_empty_answer_never_erases_loaded_articles(sqlite_engine, news_sandbox):
    ctx = context(sqlite_engine, news_sandbox)
    run(ctx, "news_guardian", D[2], D[3])
    before = snapshot(sqlite_engine)
    news_sandbox.set_faults([{"kind": "empty", "path_contains": "/guardian/", "count": -1}])
    with pytest.raises(SourceDataMissing, match="refusing to erase"):
        run(ctx, "news_guardian", D[2], D[3])
    assert snapshot(sqlite_engine) == before
    news_sandbox.set_faults([])
    assert run(ctx, "news_guardian", D[4] + timedelta(days=2), D[4] + timedelta(days=3)) == 0  # after now: none


def test_rss_upserts_current_items_and_never_deletes_older_ones(engine, news_sandbox):
    ctx = context(engine, news_sandbox)
    assert run(ctx, "news_rss", D[4] + 11 * H, D[4] + 12 * H) == 40
    first = snapshot(engine)
    run(ctx, "news_rss", D[4] + 12 * H, D[4] + 13 * H)  # next hourly run, same feed content
    assert snapshot(engine) == first
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(schema.crypto_news)).scalar_one() == 40
    # three days later the feeds list only new items; the old ones stay
    news_sandbox.now = (NOW + timedelta(days=3)).timestamp
    run(ctx, "news_rss", D[4] + 83 * H, D[4] + 84 * H)
    later = dump(engine, schema.crypto_news)
    assert set(first[0]) <= set(later) and len(later) == 80
    assert min(r[1] for r in later) < D[4].replace(tzinfo=None)  # rows are not interval-scoped


def test_missing_keys_fail_at_run_time_naming_the_setting(sqlite_engine, news_sandbox):
    for step, var in (("news_guardian", "GUARDIAN_API_KEY"), ("news_cryptopanic", "CRYPTOPANIC_API_KEY")):
        ctx = StepContext(settings(sqlite_engine, news_sandbox, **{var: ""}), sqlite_engine)
        before = len(news_sandbox.requests)
        with pytest.raises(ConfigError, match=var):
            run(ctx, step, D[3], D[4])
        assert len(news_sandbox.requests) == before  # failed before any call
    # RSS needs no key: a context without injected clients builds it from the settings
    ctx = StepContext(settings(sqlite_engine, news_sandbox, RSS_RATE_PER_MINUTE="600000"), sqlite_engine)
    assert run(ctx, "news_rss", D[3], D[4]) == 40


def test_errors_are_source_errors():
    assert issubclass(SourceError, SourceError) and issubclass(SourceError, SourceError)
    assert issubclass(SourceError, SourceError)
