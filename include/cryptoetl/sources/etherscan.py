"""Etherscan v2 API client (chain id 1, Ethereum mainnet): daily ETH network totals.

The real production client; it reaches the offline sandbox only through ``ETHERSCAN_BASE_URL``.
Every call is ``GET {base}?chainid=1&module=...&action=...&apikey=KEY`` and answers
``{"status": "1"|"0", "message": "OK"|"NOTOK"|..., "result": ...}``.

**Keys and plans** (``ETHERSCAN_API_KEY``, ``ETHERSCAN_API_PLAN``; checked when the step runs):

- Etherscan v2 wants a key on every call (without one it answers ``Missing/Invalid API Key``),
  so a missing ``ETHERSCAN_API_KEY`` is a ``ConfigError`` naming it, before any call.
- ``pro`` (the Standard plan and above): the daily statistics, one call per action for the whole
  range (``module=stats&action=daily...&startdate=&enddate=&sort=asc``):

  =====================  ======================  ============================================
  action                 column                  unit
  =====================  ======================  ============================================
  dailytx                transaction_count       transactions in the day
  dailynewaddress        new_addresses           addresses first seen in the day
  dailytxnfee            fees_native             ETH, total transaction fees of the day
  dailyavggasprice       avg_gas_price_gwei      gwei (avgGasPrice_Wei / 1e9)
  dailyblkcount          block_count             blocks in the day
  dailyavgblocksize      avg_block_size_bytes    bytes
  dailygasused           gas_used                gas units used in the day
  dailynetutilization    network_utilization     gas used / gas limit, 0-1 as reported
  =====================  ======================  ============================================

- ``free`` (also the Lite plan): the daily statistics are PRO-only, and recomputing them from
  blocks would take ~7,200 block calls a day at 3 calls/s. The free tier does give
  ``module=block&action=getblocknobytime`` (the last block at or before a time): the number of
  blocks in a day is the difference between the blocks before its two midnights, so a free
  key loads ``block_count`` and every other metric stays NULL (``data_source = etherscan-free``).
- A free key with ``ETHERSCAN_API_PLAN=pro`` gets Etherscan's "API Pro endpoint" answer: a
  final ``EtherscanPlanError`` naming ETHERSCAN_API_PLAN. An invalid key is a final
  ``EtherscanAuthError`` naming ETHERSCAN_API_KEY. The key never appears in an error or log.

**Errors come back as HTTP 200** with ``status "0"``, the reason in ``result`` (``message``
"NOTOK") or in ``message`` (``result`` null). Transient answers are retried within the task with
exponential backoff, at most ``max_retries`` times, then fail naming the answer:

- "Max calls per sec rate limit reached (3/sec)", "Max rate limit reached, please use API Key for
  higher rate limit": ends as ``SourceRateLimited``;
- "Query Timeout occured. Please select a smaller result dataset" and "Unexpected error, timeout
  or server too busy. Please try again later" (the documentation also writes "Unexpected err,
  timeout occurred or server too busy"): Etherscan's servers were busy, the same query answers
  on a later attempt (recorded in pcko1/etherscan-python#31, RevokeCash/revoke.cash#80, and
  https://docs.etherscan.io/etherscan-v2/support/common-error-messages); ends as
  ``EtherscanBusyError``. One call asks at most a few days of one statistic, so a smaller
  dataset is not what helps.

A daily-limit message fails at once (it resets at 00:00 UTC, so retrying within the task is
useless). "No data found" style answers with an empty list are an empty result; anything else
(a bad key, a bad parameter, a PRO endpoint) is a final ``SourceError``. HTTP 429, 5xx and
timeouts are handled by ``HttpSource`` like for every source.

``daily_metrics`` returns every metric of the plan for every day of [first, end) or raises
(``SourceDataGap`` when a day is absent): nothing is ever half-loaded.
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from cryptoetl.config import ConfigError
from cryptoetl.sources.http import HttpSource, SourceDataGap, SourceError, SourcePayloadError, SourceRateLimited
from cryptoetl.sources.spec import Plan, Pool, SourceSpec, SourceStep

log = logging.getLogger(__name__)

# action -> (field in each record, column, scale to the column's unit)
PRO_ACTIONS: dict[str, tuple[str, str, float]] = {
    "dailytx": ("transactionCount", "transaction_count", 1.0),
    "dailynewaddress": ("newAddressCount", "new_addresses", 1.0),
    "dailytxnfee": ("transactionFee_Eth", "fees_native", 1.0),
    "dailyavggasprice": ("avgGasPrice_Wei", "avg_gas_price_gwei", 1e-9),
    "dailyblkcount": ("blockCount", "block_count", 1.0),
    "dailyavgblocksize": ("blockSize_bytes", "avg_block_size_bytes", 1.0),
    "dailygasused": ("gasUsed", "gas_used", 1.0),
    "dailynetutilization": ("networkUtilization", "network_utilization", 1.0),
}
FREE_COLUMNS = ("block_count",)
# A day's totals may be used from the day's end (00:00 UTC) plus this delay: the row's
# ``complete_at`` (loaders/onchain.py), from which features use it. Etherscan documents no time at
# which its daily statistics include the day before. Ethereum itself settles fast (a block's time
# is its 12 s slot; finality after two epochs, about 13 min), and a provider that documents its
# Ethereum daily statistics has them by 00:30 UTC (Nodit). 6 h, as for blockchain.info, is a
# conservative margin for Etherscan's daily batch, not a measurement. Rows keep the delay they were
# written with: after a change, reload the history (or move the stored values in a revision, as
# migrations/versions/0006 did) and rebuild the features.
PUBLICATION_DELAY = timedelta(hours=6)


SPEC = SourceSpec(
    name="etherscan",
    title="Etherscan",
    # Etherscan v2 wants a key on every call. Free keys: 3 calls/s; the daily stats are PRO-only.
    plans={"free": Plan("https://api.etherscan.io/v2/api", 180, needs_key=True),
           "pro": Plan("https://api.etherscan.io/v2/api", 180, needs_key=True)},
    steps=(
        SourceStep(
            step="onchain_eth",
            run="cryptoetl.loaders.onchain:run_onchain_eth",
            writes="crypto_onchain_data",
            dag_id="onchain_etherscan",
            task_id="load_onchain_eth",
            description="ETH daily on-chain totals from the Etherscan v2 API",
        ),
    ),
    sandbox="cryptoetl.sandbox.onchain:EtherscanApi",
    sandbox_path="/etherscan/v2/api",
    sandbox_env={"ETHERSCAN_API_KEY": "sandbox-pro-demo", "ETHERSCAN_API_PLAN": "pro"},
    pool=Pool(1, "Concurrent Etherscan tasks (free key: 5 calls/s; the client spaces calls)."),
    key_use="the Etherscan v2 API needs a key on every call",
)


class EtherscanAuthError(SourceError):
    """Etherscan rejected the key."""


class EtherscanPlanError(SourceError):
    """The key's plan does not include the endpoint (PRO endpoint with a free key)."""


class EtherscanBusyError(SourceError):
    """Etherscan kept answering "Query Timeout" / "server too busy" after every retry."""


# Etherscan's transient HTTP-200 answers (lower case): its servers were busy, ask again.
BUSY_MARKERS = ("query timeout", "server too busy", "timeout occurred", "timeout occured")


def _transient(low: str) -> type[SourceError] | None:
    """The error a transient answer ends as after every retry; None if the answer is not transient."""
    if "rate limit" in low and not ("daily" in low or "per day" in low):
        return SourceRateLimited
    if any(marker in low for marker in BUSY_MARKERS):
        return EtherscanBusyError
    return None


def _number(value: Any, where: str) -> float:
    """Etherscan sends numbers as JSON numbers or decimal strings."""
    if isinstance(value, bool):
        raise SourcePayloadError(f"{where}: {value!r} is not a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SourcePayloadError(f"{where}: {value!r} is not a number") from None
    if not math.isfinite(number):
        raise SourcePayloadError(f"{where}: {value!r} is not a finite number")
    return number


class EtherscanClient(HttpSource):
    spec = SPEC

    def __init__(self, base_url: str, *, api_key: str, plan: str = "free", chain_id: int = 1,
                 rate_per_minute: float = 180, **kwargs):
        if plan not in SPEC.plans:
            raise ConfigError(f"ETHERSCAN_API_PLAN must be one of {list(SPEC.plans)}, got {plan!r}")
        super().__init__(base_url, api_key=api_key, plan=plan, rate_per_minute=rate_per_minute, **kwargs)
        self.chain_id = chain_id

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns this plan fills; every other metric column stays NULL."""
        if self.plan == "pro":
            return tuple(column for _, column, _ in PRO_ACTIONS.values())
        return FREE_COLUMNS

    # -- the one call every endpoint goes through ----------------------------------------
    def call(self, module: str, action: str, **params: Any) -> tuple[Any, bool]:
        """``result`` of a successful answer and whether it was labelled synthetic.

        Etherscan reports errors with HTTP 200 and ``status "0"``: transient ones (rate limits,
        query timeouts, busy servers) are retried with exponential backoff, everything else is final."""
        query = {"chainid": self.chain_id, "module": module, "action": action, **params, "apikey": self.api_key}
        where = f"etherscan {module}/{action} {self._redact(params)}"
        for attempt in range(self.max_retries + 1):
            body, synthetic = self.get_json("", query)
            if not isinstance(body, dict) or "status" not in body or "result" not in body:
                keys = sorted(body) if isinstance(body, dict) else type(body).__name__
                raise SourcePayloadError(f"{where}: payload lacks 'status'/'result' (got {keys}); "
                                            "has the API schema changed?")
            status, result, message = str(body["status"]), body["result"], str(body.get("message", ""))
            if status == "1":
                return result, synthetic
            text = result if isinstance(result, str) else message
            low = text.lower()
            if (error := _transient(low)) is None:
                return self._final(where, text, result, message), synthetic
            if attempt == self.max_retries:
                raise error(f"{where}: giving up after {self.max_retries + 1} attempts: Etherscan kept answering "
                            f"{text[:200]!r}")
            wait = self._backoff(attempt)
            log.warning("%s: %s; retry %d/%d in %.1fs", where, text[:120], attempt + 1, self.max_retries, wait)
            self.sleep(wait)
            self._slept_since_call += wait  # counts as spacing before the next call
        raise AssertionError("unreachable")  # the loop returns or raises

    @staticmethod
    def _final(where: str, text: str, result: Any, message: str) -> list:
        """A non-transient ``status "0"`` answer: ``[]`` for "No data found", else the final error."""
        low = text.lower()
        if "rate limit" in low:
            raise SourceRateLimited(f"{where}: daily call limit reached ({text}); it resets at "
                                    "00:00 UTC, retrying now cannot help")
        if "invalid api key" in low or "missing/invalid api key" in low:
            raise EtherscanAuthError(f"{where}: Etherscan rejected the key ({text.split('|')[0]}); "
                                     "check ETHERSCAN_API_KEY")
        if "api pro endpoint" in low:
            raise EtherscanPlanError(f"{where}: this is a PRO endpoint and the key's plan does not include it; "
                                     "set ETHERSCAN_API_PLAN=free (block counts only) or upgrade the key")
        if isinstance(result, list) and not result and message.lower().startswith("no "):
            return []  # "No data found" / "No transactions found"
        raise SourceError(f"{where}: {message}: {text[:200]}")

    # -- endpoints ---------------------------------------------------------------------------
    def daily_stat(self, action: str, first: date, end: date) -> tuple[dict[date, float], bool]:
        """A PRO daily statistic by UTC day for the days in [first, end), in the column's unit."""
        field, _, scale = PRO_ACTIONS[action]
        last = end - timedelta(days=1)
        result, synthetic = self.call("stats", action, startdate=first.isoformat(), enddate=last.isoformat(),
                                      sort="asc")
        where = f"etherscan stats/{action} [{first}, {end})"
        if not isinstance(result, list):
            raise SourcePayloadError(f"{where}: 'result' is {type(result).__name__}, not a list of days")
        out: dict[date, float] = {}
        for record in result:
            if not isinstance(record, dict) or "UTCDate" not in record or field not in record:
                keys = sorted(record) if isinstance(record, dict) else type(record).__name__
                raise SourcePayloadError(f"{where}: a record lacks 'UTCDate'/{field!r} (got {keys}); "
                                            "has the API schema changed?")
            try:
                day = date.fromisoformat(str(record["UTCDate"]))
            except ValueError:
                raise SourcePayloadError(f"{where}: UTCDate {record['UTCDate']!r} is not YYYY-MM-DD") from None
            if not first <= day < end:
                continue
            if day in out:
                raise SourcePayloadError(f"{where}: several records for {day}")
            out[day] = _number(record[field], f"{where} {field} on {day}") * scale
        return out, synthetic

    def block_before(self, timestamp: int) -> tuple[int, bool]:
        """Number of the last block mined at or before ``timestamp`` (free endpoint)."""
        result, synthetic = self.call("block", "getblocknobytime", timestamp=timestamp, closest="before")
        where = f"etherscan block/getblocknobytime at {timestamp}"
        if isinstance(result, bool) or not isinstance(result, str | int):
            raise SourcePayloadError(f"{where}: 'result' is {type(result).__name__}, not a block number")
        try:
            return int(result), synthetic
        except ValueError:
            raise SourcePayloadError(f"{where}: {result!r} is not a block number") from None

    def block_counts(self, first: date, end: date) -> tuple[dict[date, float], bool]:
        """Blocks mined in each UTC day of [first, end): blocks before the next midnight minus
        blocks before this one (the last block at or before midnight - 1 s)."""
        days = [first + timedelta(days=i) for i in range((end - first).days + 1)]
        synthetic_any = False
        numbers = []
        for day in days:  # day boundaries, first midnight through the end midnight
            midnight = int(datetime.combine(day, time.min, tzinfo=UTC).timestamp())
            number, synthetic = self.block_before(midnight - 1)
            numbers.append(number)
            synthetic_any = synthetic_any or synthetic
        out = {}
        for day, lo, hi in zip(days, numbers, numbers[1:], strict=False):
            if hi < lo:
                raise SourcePayloadError(f"etherscan getblocknobytime: block numbers go backwards around {day} "
                                            f"({lo} then {hi})")
            out[day] = float(hi - lo)
        return out, synthetic_any

    def daily_metrics(self, first: date, end: date) -> tuple[dict[str, dict[date, float]], bool]:
        """``{column: {day: value}}`` for every column of the plan and every day of [first, end),
        and whether any answer was synthetic. Raises if any metric lacks a day."""
        if first >= end:
            raise ValueError(f"empty day range [{first}, {end})")
        days = [first + timedelta(days=i) for i in range((end - first).days)]
        out: dict[str, dict[date, float]] = {}
        synthetic_any = False
        if self.plan == "pro":
            fetched = [(action, column, self.daily_stat(action, first, end))
                       for action, (_, column, _) in PRO_ACTIONS.items()]
        else:
            fetched = [("getblocknobytime", "block_count", self.block_counts(first, end))]
        missing: dict[str, list[date]] = {}
        for origin, column, (values, synthetic) in fetched:
            synthetic_any = synthetic_any or synthetic
            out[column] = values
            if lacking := [d for d in days if d not in values]:
                missing[origin] = lacking
        if missing:
            detail = "; ".join(f"{name}: {', '.join(d.isoformat() for d in ds)}" for name, ds in missing.items())
            raise SourceDataGap(f"Etherscan has no value for some days of [{first}, {end}) ({detail}); "
                                       "the day may not be published yet. Nothing was written; rerun later")
        return out, synthetic_any
