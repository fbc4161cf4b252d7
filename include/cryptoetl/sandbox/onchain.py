"""Sandbox blockchain.info charts and Etherscan v2 APIs. ALL DATA HERE IS SYNTHETIC.

Seeded daily series on the ``EPOCH`` day grid (2023-01-01 onwards), each generated once per
stream so a value never depends on which ranges were asked before. Magnitudes are realistic
(BTC ~400k transactions a day, ~6e8 TH/s, difficulty following the hash rate per 2016-block
epoch, the April 2024 halving in miners' revenue; ETH ~1.1M transactions, ~7,150 blocks a day),
the numbers themselves mean nothing. A day is served only once it has ended by the server's
clock (``server.now()``): a day's totals are final after the day.

**blockchain.info** (``/blockchain``, like https://api.blockchain.info):
``GET /blockchain/charts/{chart}?start=YYYY-MM-DD|unix&timespan=N(days|weeks|months|years)
&format=json&sampled=...`` -> ``{"status": "ok", "name", "unit", "period": "day", "description",
"values": [{"x": unix_s, "y": number}]}`` for the days in [start, start + timespan). Unknown
chart: HTTP 404. Faults: ``empty`` empties ``values``, ``drift`` renames ``y`` to ``value``.

**Etherscan v2** (``/etherscan/v2/api``, like https://api.etherscan.io/v2/api):
``?chainid=1&module=stats&action=daily...&startdate=&enddate=&sort=asc|desc&apikey=`` (PRO;
inclusive dates) and ``?chainid=1&module=block&action=getblocknobytime&timestamp=&closest=
before|after&apikey=`` (free). Errors are Etherscan's: HTTP 200 with ``{"status": "0",
"message": "NOTOK", "result": "Missing/Invalid API Key"}`` (no key), ``"Invalid API Key
(#err2)|..."`` (unknown key), ``"Sorry, it looks like you are trying to access an API Pro
endpoint. Contact us to upgrade to API Pro."`` (free key, PRO action). Sandbox keys: any key
starting ``sandbox-pro`` is a PRO key, ``sandbox-free`` a free key, anything else is invalid.
``EtherscanApi.inject_error(result, count)`` makes the next calls answer an HTTP-200 error such as
``"Max calls per sec rate limit reached (3/sec)"``, as Etherscan does. **By default** about one
request in ``TRANSIENT_EVERY`` (chosen by a seed of its query, the key left out) gets one of
Etherscan's transient answers on its first attempt, and the real answer when asked again:
``{"status": "0", "message": "NOTOK", "result": "Query Timeout occured. Please select a smaller
result dataset"}`` or ``{"status": "0", "message": "Unexpected error, timeout or server too busy.
Please try again later", "result": null}`` (the wordings and shapes of recorded answers), so every
demo run exercises the client's retry. ``transient_every = 0`` turns it off; ``clear_errors()``
also forgets which requests were asked (each one's next attempt is a first attempt again). Faults: ``empty`` -> "No
data found" (stats) / "No closest block found" (blocks), ``drift`` renames the value fields.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from datetime import UTC, date, datetime

import numpy as np

from cryptoetl.sandbox.common import DAY, EPOCH, HORIZON_DAYS, Route, rng, seed

BLOCKCHAIN_PREFIX = "/blockchain"
ETHERSCAN_PREFIX = "/etherscan/v2/api"

PRO_KEY_PREFIX = "sandbox-pro"
FREE_KEY_PREFIX = "sandbox-free"

_WEEKDAY = (6 + np.arange(HORIZON_DAYS)) % 7  # 2023-01-01 (day 0) was a Sunday
_WEEKEND = _WEEKDAY >= 5
_HALVING_DAY = (date(2024, 4, 20) - date(2023, 1, 1)).days
_GAS_LIMIT_RAISE_DAY = (date(2025, 2, 5) - date(2023, 1, 1)).days
_GENESIS_BLOCK = 16_308_190  # first synthetic block of 2023-01-01


def _walk(name: str, sigma: float, drift: float = 0.0) -> np.ndarray:
    """exp of a seeded random walk starting at 1."""
    return np.exp(np.cumsum(rng("onchain", name, "walk").normal(drift, sigma, HORIZON_DAYS)))


def _noise(name: str, sigma: float) -> np.ndarray:
    return rng("onchain", name, "noise").lognormal(0.0, sigma, HORIZON_DAYS)


def _weekly(dip: float) -> np.ndarray:
    return np.where(_WEEKEND, 1.0 - dip, 1.0)


def _day_index(ts: float) -> int:
    return int((ts - EPOCH) // DAY)


def _completed_days(server, lo: int, hi: int) -> range:
    """Day indexes in [lo, hi) that exist on the grid and have ended by the server's clock."""
    done = _day_index(server.now())  # the current (unfinished) day
    return range(max(lo, 0), min(hi, done, HORIZON_DAYS))


# ---------------------------------------------------------------------------- blockchain.info
_CHART_META = {
    "n-transactions": ("Confirmed Transactions Per Day", "Transactions",
                       "The number of daily confirmed Bitcoin transactions."),
    "n-unique-addresses": ("Unique Addresses Used", "Addresses",
                           "The total number of unique addresses used on the blockchain."),
    "estimated-transaction-volume-usd": ("Estimated Transaction Value (USD)", "USD",
                                         "The total estimated value in USD of transactions on the blockchain."),
    "output-volume": ("Output Value Per Day", "BTC", "The total value of all transaction outputs per day."),
    "transaction-fees": ("Total Transaction Fees (BTC)", "BTC",
                         "The total BTC value of all transaction fees paid to miners."),
    "transaction-fees-usd": ("Total Transaction Fees (USD)", "USD",
                             "The total USD value of all transaction fees paid to miners."),
    "miners-revenue": ("Miners Revenue (USD)", "USD",
                       "Total value of coinbase block rewards and transaction fees paid to miners."),
    "hash-rate": ("Total Hash Rate (TH/s)", "Hash Rate TH/s",
                  "The estimated number of terahashes per second the bitcoin network is performing."),
    "difficulty": ("Network Difficulty", "Difficulty",
                   "A relative measure of how difficult it is to mine a new block for the blockchain."),
    "avg-block-size": ("Average Block Size (MB)", "Megabytes", "The average block size over the past 24 hours."),
}
_TIMESPAN = re.compile(r"^(\d+)(day|days|week|weeks|month|months|year|years)$")
_SPAN_DAYS = {"day": 1, "week": 7, "month": 30, "year": 365}


def _btc_series() -> dict[str, np.ndarray]:
    price = 16_500.0 * _walk("btc-price", 0.028, 0.0012)
    hash_rate = 2.5e8 * _walk("btc-hash-rate", 0.01, 0.0012) * _noise("btc-hash-rate", 0.05)
    # Difficulty adjusts every 2016 blocks (~14 days) to the previous epoch's hash rate:
    # hashes per block = difficulty * 2^32, one block per 600 s.
    epoch = np.arange(HORIZON_DAYS) // 14
    epoch_mean = np.array([hash_rate[epoch == e].mean() for e in range(epoch.max() + 1)])
    previous = np.concatenate([[epoch_mean[0]], epoch_mean[:-1]])
    difficulty = previous[epoch] * 1e12 * 600 / 2**32
    tx = np.round(3.5e5 * _walk("btc-tx", 0.02) * _weekly(0.12) * _noise("btc-tx", 0.05))
    fees_btc = 12.0 * _walk("btc-fees", 0.04) * _noise("btc-fees", 0.25)
    subsidy = np.where(np.arange(HORIZON_DAYS) < _HALVING_DAY, 6.25, 3.125)
    blocks = 144 * _noise("btc-blocks", 0.06)
    volume_btc = 9.0e4 * _walk("btc-volume", 0.03) * _weekly(0.2) * _noise("btc-volume", 0.2)
    return {
        "n-transactions": tx,
        "n-unique-addresses": np.round(tx * 1.7 * _noise("btc-addresses", 0.04)),
        "estimated-transaction-volume-usd": volume_btc * price,
        "output-volume": volume_btc * 7.5 * _noise("btc-outputs", 0.1),
        "transaction-fees": fees_btc,
        "transaction-fees-usd": fees_btc * price,
        "miners-revenue": (subsidy * blocks + fees_btc) * price,
        "hash-rate": hash_rate,
        "difficulty": difficulty,
        "avg-block-size": np.clip(1.55 * _noise("btc-block-size", 0.08), 0.3, 3.99),
    }


class BlockchainInfoApi:
    def __init__(self, server):
        self.server = server
        self._series: dict[str, np.ndarray] | None = None
        self._lock = threading.Lock()

    def series(self) -> dict[str, np.ndarray]:
        with self._lock:
            if self._series is None:
                self._series = _btc_series()
            return self._series

    def routes(self) -> list[Route]:
        return [
            Route("GET", rf"^{BLOCKCHAIN_PREFIX}/charts/(?P<chart>[A-Za-z0-9-]+)$", self.chart,
                  empty=lambda body: {**body, "values": []},
                  drift=lambda body: {**body, "values": [{"x": p["x"], "value": p["y"]} for p in body["values"]]}),
        ]

    def chart(self, query, chart: str):
        if chart not in _CHART_META:
            return 404, {"error": f"Chart {chart} not found (synthetic sandbox)"}
        if query.get("format", "json") != "json":
            return 400, {"error": "the sandbox only speaks format=json"}
        match = _TIMESPAN.match(query.get("timespan", "1year"))
        if not match:
            return 400, {"error": f"invalid timespan {query.get('timespan')!r}"}
        span = int(match.group(1)) * _SPAN_DAYS[match.group(2).rstrip("s")]
        raw_start = query.get("start")
        if raw_start is None:
            first = _day_index(self.server.now()) - span
        else:
            try:
                ts = (float(raw_start) if raw_start.isdigit()
                      else datetime.combine(date.fromisoformat(raw_start), datetime.min.time(), UTC).timestamp())
            except ValueError:
                return 400, {"error": f"invalid start {raw_start!r}"}
            first = -(-int(ts - EPOCH) // DAY)  # the first day starting at or after `start`
        values = self.series()[chart]
        name, unit, description = _CHART_META[chart]
        return 200, {
            "status": "ok", "name": name, "unit": unit, "period": "day", "description": description,
            "values": [{"x": EPOCH + d * DAY, "y": float(values[d])}
                       for d in _completed_days(self.server, first, first + span)],
        }


# ---------------------------------------------------------------------------- Etherscan v2
PRO_ONLY = "Sorry, it looks like you are trying to access an API Pro endpoint. Contact us to upgrade to API Pro."
NO_KEY = "Missing/Invalid API Key"
BAD_KEY = "Invalid API Key (#err2)|sandbox"
_STATS_ACTIONS = ("dailytx", "dailynewaddress", "dailytxnfee", "dailyavggasprice", "dailyblkcount",
                  "dailyavgblocksize", "dailygasused", "dailynetutilization")
_DATE_KEYS = ("UTCDate", "unixTimeStamp")
TRANSIENT_EVERY = 8
QUERY_TIMEOUT = "Query Timeout occured. Please select a smaller result dataset"
SERVER_BUSY = "Unexpected error, timeout or server too busy. Please try again later"


def _notok(result: str, message: str = "NOTOK") -> tuple[int, dict]:
    return 200, {"status": "0", "message": message, "result": result}


def _eth_series() -> dict[str, np.ndarray]:
    days = np.arange(HORIZON_DAYS)
    blocks = np.clip(np.round(7_200 * (1 - 0.008 * _noise("eth-missed-slots", 0.6))), 7_000, 7_200).astype(np.int64)
    gas_limit = np.where(days < _GAS_LIMIT_RAISE_DAY, 30_000_000, 36_000_000)
    utilization = np.clip(0.5 * _noise("eth-utilization", 0.06), 0.2, 0.99)
    gas_used = np.round(blocks * gas_limit * utilization)
    fees_eth = 300.0 * _walk("eth-fees", 0.04) * _noise("eth-fees", 0.3)
    return {
        "blocks": blocks,
        "first_block": _GENESIS_BLOCK + np.concatenate([[0], np.cumsum(blocks)[:-1]]),
        "tx": np.round(1.0e6 * _walk("eth-tx", 0.015) * _weekly(0.08) * _noise("eth-tx", 0.05)),
        "new_addresses": np.round(1.0e5 * _walk("eth-addresses", 0.03) * _noise("eth-addresses", 0.12)),
        "fees_eth": fees_eth,
        "gas_used": gas_used,
        "avg_gas_price_wei": np.round(fees_eth * 1e18 / gas_used),
        "block_size": np.round(1.3e5 * _walk("eth-block-size", 0.01) * _noise("eth-block-size", 0.1)),
        "utilization": utilization,
    }


class EtherscanApi:
    def __init__(self, server):
        self.server = server
        self._series: dict[str, np.ndarray] | None = None
        self._lock = threading.Lock()
        self._errors: list[dict] = []
        self.transient_every = TRANSIENT_EVERY
        self._attempts: Counter[str] = Counter()

    def series(self) -> dict[str, np.ndarray]:
        with self._lock:
            if self._series is None:
                self._series = _eth_series()
            return self._series

    def inject_error(self, result: str, count: int = 1, action: str | None = None) -> None:
        """Answer the next ``count`` calls (of ``action``, if given; -1 = forever) with Etherscan's
        HTTP-200 error ``{"status": "0", "message": "NOTOK", "result": result}``; [] clears."""
        with self._lock:
            self._errors.append({"result": result, "count": count, "action": action})

    def clear_errors(self) -> None:
        with self._lock:
            self._errors = []
            self._attempts.clear()

    def transient_answer(self, query) -> tuple[int, dict] | None:
        """Etherscan's transient answer if this is the first attempt of a request the seed picks."""
        if not self.transient_every:
            return None
        request = "&".join(f"{k}={v}" for k, v in sorted(query.items()) if k != "apikey")
        with self._lock:
            self._attempts[request] += 1
            first = self._attempts[request] == 1
        pick = seed("etherscan-transient/" + request)
        if not first or pick % self.transient_every:
            return None
        if pick // self.transient_every % 2:
            return _notok(QUERY_TIMEOUT)
        return 200, {"status": "0", "message": SERVER_BUSY, "result": None}

    def _take_error(self, action: str | None) -> str | None:
        with self._lock:
            for err in self._errors:
                if err["count"] != 0 and err["action"] in (None, action):
                    if err["count"] > 0:
                        err["count"] -= 1
                    return err["result"]
        return None

    def routes(self) -> list[Route]:
        return [Route("GET", rf"^{ETHERSCAN_PREFIX}/?$", self.api, auth=self.auth, empty=self._empty,
                      drift=self._drift, key_param="apikey")]

    @staticmethod
    def plan_of(key: str | None) -> str | None:
        if key and key.startswith(PRO_KEY_PREFIX):
            return "pro"
        if key and key.startswith(FREE_KEY_PREFIX):
            return "free"
        return None

    def auth(self, query, headers):
        key = query.get("apikey")
        if not key:
            return _notok(NO_KEY)
        if self.plan_of(key) is None:
            return _notok(BAD_KEY)
        return None

    @staticmethod
    def _empty(body):
        if isinstance(body.get("result"), list):
            return {"status": "0", "message": "No data found", "result": []}
        return {"status": "0", "message": "NOTOK", "result": "Error! No closest block found"}

    @staticmethod
    def _drift(body):
        result = body.get("result")
        if isinstance(result, list):
            renamed = [{(k if k in _DATE_KEYS else k.lower()): v for k, v in rec.items()} for rec in result]
            return {**body, "result": renamed}
        return {"status": body.get("status"), "message": body.get("message"), "data": result}

    def api(self, query):
        if (injected := self._take_error(query.get("action"))) is not None:
            return _notok(injected)
        if (transient := self.transient_answer(query)) is not None:
            return transient
        if query.get("chainid") != "1":
            return _notok("Missing or unsupported chainid parameter (required for v2 api), please see "
                          "https://api.etherscan.io/v2/chainlist for the list of supported chainids")
        module, action = query.get("module"), query.get("action")
        if module == "stats" and action in _STATS_ACTIONS:
            if self.plan_of(query.get("apikey")) != "pro":
                return _notok(PRO_ONLY)
            return self.daily_stats(query, action)
        if module == "block" and action == "getblocknobytime":
            return self.block_by_time(query)
        return _notok("Error! Missing Or invalid Action name")

    def daily_stats(self, query, action: str):
        try:
            first = date.fromisoformat(query["startdate"])
            last = date.fromisoformat(query["enddate"])
        except (KeyError, ValueError):
            return _notok("Error! Invalid date format, use yyyy-MM-dd")
        lo, hi = (first - date(2023, 1, 1)).days, (last - date(2023, 1, 1)).days + 1  # enddate is inclusive
        s = self.series()
        records = []
        for d in _completed_days(self.server, lo, hi):
            day = datetime.fromtimestamp(EPOCH + d * DAY, UTC)
            rec = {"UTCDate": day.date().isoformat(), "unixTimeStamp": str(EPOCH + d * DAY)}
            if action == "dailytx":
                rec["transactionCount"] = int(s["tx"][d])
            elif action == "dailynewaddress":
                rec["newAddressCount"] = int(s["new_addresses"][d])
            elif action == "dailytxnfee":
                rec["transactionFee_Eth"] = f"{s['fees_eth'][d]:.12f}"
            elif action == "dailyavggasprice":
                avg = int(s["avg_gas_price_wei"][d])
                rec |= {"maxGasPrice_Wei": str(avg * 400), "minGasPrice_Wei": "1000000", "avgGasPrice_Wei": str(avg)}
            elif action == "dailyblkcount":
                rec |= {"blockCount": int(s["blocks"][d]), "blockRewards_Eth": f"{s['fees_eth'][d] * 0.1:.12f}"}
            elif action == "dailyavgblocksize":
                rec["blockSize_bytes"] = int(s["block_size"][d])
            elif action == "dailygasused":
                rec["gasUsed"] = str(int(s["gas_used"][d]))
            elif action == "dailynetutilization":
                rec["networkUtilization"] = f"{s['utilization'][d]:.4f}"
            records.append(rec)
        if query.get("sort", "asc") == "desc":
            records.reverse()
        if not records:
            return 200, {"status": "0", "message": "No data found", "result": []}
        return 200, {"status": "1", "message": "OK", "result": records}

    def _block_at_or_before(self, ts: int) -> int | None:
        """Blocks of day d are spread evenly: block k at day_start + floor(k * 86400 / n_d)."""
        d = _day_index(ts)
        if d < 0:
            return None
        if d >= HORIZON_DAYS:
            d, ts = HORIZON_DAYS - 1, EPOCH + HORIZON_DAYS * DAY - 1
        s = self.series()
        n, offset = int(s["blocks"][d]), ts - (EPOCH + d * DAY)
        k = -(-((offset + 1) * n) // DAY) - 1  # largest k with floor(k * 86400 / n) <= offset
        return int(s["first_block"][d]) + k

    def block_by_time(self, query):
        try:
            ts = int(query["timestamp"])
        except (KeyError, ValueError):
            return _notok("Error! Invalid timestamp")
        closest = query.get("closest", "before")
        now = int(self.server.now())
        if closest == "before":
            number = self._block_at_or_before(min(ts, now))
        elif closest == "after":
            number = None if ts > now else self._block_at_or_before(ts - 1)
            number = None if number is None else number + 1
        else:
            return _notok("Error! Invalid closest parameter, use before or after")
        if number is None:
            return _notok("Error! No closest block found")
        return 200, {"status": "1", "message": "OK", "result": str(number)}
