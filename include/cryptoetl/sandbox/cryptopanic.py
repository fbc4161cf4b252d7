"""Sandbox CryptoPanic developer API v2 (posts). ALL DATA HERE IS SYNTHETIC.

CryptoPanic lists the crypto outlets' articles of ``sandbox/news.py`` (coindesk, cointelegraph,
decrypt, guardian-crypto) one to fifteen minutes after their publication, with their title, in the
shape the real developer plan answers (recorded responses, e.g. the 2025 page in
hammadAuthornate/crypto-sentiment ``const/news-data.ts``):

- the page: ``{"count", "next": url|null, "previous": url|null, "results": [...]}``; ``next``
  carries the auth_token like the real API; ``count`` is how many posts the sandbox listed up to
  this page (the real API reports its plan's total); 20 posts a page, newest first;
- a post: ``kind``, ``domain`` and ``source`` (``title``, ``region``, ``domain``, ``path``,
  ``type``: the publisher's), ``title``, ``published_at``, ``created_at``, ``slug``, ``id``,
  ``url`` (CryptoPanic's own page, with ``?mtm_campaign=API-OFA``) and ``votes``. There is NO
  ``original_url`` and NO ``description``; ``currencies`` is absent from about half the posts.

So a post reaches the warehouse under a different URL than the same article from the Guardian
or an RSS feed, with the same title and the publisher's domain: what the story rule of
``loaders/news.py`` matches.

``GET /cryptopanic/api/developer/v2/posts/?auth_token=&public=true&kind=news|media|all&page=``;
no token -> 401; a page past the last -> 404. Faults: ``empty`` empties the results, ``drift``
renames ``published_at``.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from cryptoetl.sandbox.common import EPOCH, HORIZON_HOURS, HOUR, Route, seed
from cryptoetl.sandbox.news import OUTLETS, Article, _iso, _slug, articles_in_hour

CRYPTOPANIC_PREFIX = "/cryptopanic/api/developer/v2"
CRYPTOPANIC_PAGE_SIZE = 20
CRYPTOPANIC_MAX_DELAY = 15 * 60  # CryptoPanic lists an article up to 15 min after publication
CRYPTOPANIC_OUTLETS = ("coindesk", "cointelegraph", "decrypt", "guardian-crypto")
SOURCE_TITLES = {"coindesk": "CoinDesk", "cointelegraph": "CoinTelegraph", "decrypt": "Decrypt",
                 "guardian-crypto": "The Guardian"}  # CryptoPanic's own spelling of the feed


@dataclass(frozen=True)
class _Post:
    published: int
    post_id: int
    article: Article


def _post(article: Article) -> _Post:
    s = seed("cryptopanic/" + article.key)
    return _Post(article.ts + 60 + s % (CRYPTOPANIC_MAX_DELAY - 60), 10_000_000 + s % 90_000_000, article)


class CryptoPanicApi:
    def __init__(self, server):
        self.server = server

    def routes(self) -> list[Route]:
        return [Route("GET", rf"^{CRYPTOPANIC_PREFIX}/posts/?$", self.posts, auth=self.auth,
                      key_param="auth_token", empty=lambda body: {**body, "count": 0, "next": None, "results": []},
                      drift=lambda body: {**body, "results": [
                          {("published" if k == "published_at" else k): v for k, v in r.items()}
                          for r in body.get("results", [])]})]

    def auth(self, query, headers):
        if not query.get("auth_token"):
            return 401, {"status": "Incomplete", "info": "Missing auth_token (synthetic sandbox)"}
        return None

    def _newest_first(self, need: int) -> tuple[list[_Post], bool]:
        """The ``need`` newest posts before now, and whether older ones exist."""
        now = self.server.now()
        hour = min(int((now - EPOCH) // HOUR), HORIZON_HOURS - 1)
        posts: list[_Post] = []
        while hour >= 0:
            posts += [p for o in CRYPTOPANIC_OUTLETS for a in articles_in_hour(o, hour)
                      if (p := _post(a)).published <= now]
            # every post published at or after this threshold has been collected
            threshold = EPOCH + hour * HOUR + CRYPTOPANIC_MAX_DELAY
            if sum(p.published >= threshold for p in posts) > need:
                break
            hour -= 1
        posts.sort(key=lambda p: (p.published, p.post_id), reverse=True)
        return posts[:need], len(posts) > need

    def posts(self, query):
        try:
            page = int(query.get("page", 1))
        except ValueError:
            return 404, {"detail": "Invalid page."}
        if page < 1:
            return 404, {"detail": "Invalid page."}
        kind = query.get("kind", "all")
        if kind not in ("news", "media", "all"):
            return 400, {"status": "Incomplete", "info": f"invalid kind {kind!r}"}
        posts, more = self._newest_first(page * CRYPTOPANIC_PAGE_SIZE)
        if kind == "media":
            posts, more = [], False
        chunk = posts[(page - 1) * CRYPTOPANIC_PAGE_SIZE:]
        if not chunk and page > 1:
            return 404, {"detail": "Invalid page."}
        base = f"{self.server.root_url}{CRYPTOPANIC_PREFIX}/posts/?"
        nxt = base + urlencode({**query, "page": page + 1}) if more else None
        prev = base + urlencode({**query, "page": page - 1}) if page > 1 else None
        return 200, {"count": len(posts) + int(more), "next": nxt, "previous": prev,
                     "results": [self._render(p) for p in chunk]}

    @staticmethod
    def _render(p: _Post) -> dict:
        a = p.article
        s = seed("cryptopanic-shape/" + a.key)
        domain = OUTLETS[a.outlet][2]
        slug = "-".join(w.capitalize() for w in _slug(a.title).split("-"))[:80]
        post = {
            "kind": "news",
            "domain": domain,
            "source": {"title": SOURCE_TITLES[a.outlet], "region": "en", "domain": domain, "path": None,
                       "type": "feed"},
            "title": a.title,
            "published_at": _iso(p.published),
            "slug": slug,
        }
        if a.coin and s % 2:  # often absent, like the real posts
            post["currencies"] = [{"code": a.coin[0], "title": a.coin[1], "slug": a.coin[1].lower(),
                                   "url": f"https://cryptopanic.com/news/{a.coin[1].lower()}/"}]
        return post | {
            "id": p.post_id,
            "url": f"https://cryptopanic.com/news/{p.post_id}/{slug}?mtm_campaign=API-OFA",
            "created_at": _iso(p.published),
            "votes": {"negative": s % 5, "positive": s % 7, "important": s % 3, "liked": s % 4, "disliked": 0,
                      "lol": 0, "toxic": 0, "saved": s % 2, "comments": 0},
        }
