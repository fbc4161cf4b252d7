"""The precision gate's fixed calibration set (``sentiment/precision.py``).

WRITTEN FOR THIS PROJECT: 60 short, invented finance and crypto headlines, not taken from any
news source or data set. No label is attached: the gate compares a model's fp32 scores with its
reduced-precision scores on these texts, so only the model's own answers matter. They are a mix
of bullish, bearish and neutral wording, crypto and general markets, 5 to 16 words, as news titles
are (a third of them carry a short standfirst, as the step's ``title + ". " + summary`` texts do).

Changing a single character changes the gate's input: bump ``CALIBRATION_VERSION`` with any edit
(the version is logged with every decision, and tests pin the text's hash).
"""

from __future__ import annotations

CALIBRATION_VERSION = "2026-12-v1"

HEADLINES: tuple[str, ...] = (
    # bullish / positive wording
    "Bitcoin climbs above its previous record as spot ETF inflows accelerate",
    "Ether rallies after the network upgrade ships without a hitch",
    "Solana rebounds strongly as decentralised exchange volumes hit a new high",
    "Chipmaker beats quarterly earnings forecasts and raises full-year guidance",
    "Stocks close higher for a fifth day as inflation cools faster than expected",
    "Major payments firm adds stablecoin settlement for merchants in forty countries",
    "Regulator approves the first staking fund, analysts expect strong demand",
    "Miners report record revenue as transaction fees surge",
    "Retail investors return to crypto as trading volumes double in a week",
    "Central bank signals rate cuts are coming, bonds and equities gain",
    "Cardano developers announce a successful mainnet launch of the new smart contract layer",
    "Institutional investors pour a billion dollars into bitcoin funds this month",
    "Exchange reports profits up forty percent on strong derivatives activity",
    "Dogecoin jumps as a large retailer starts accepting it at checkout",
    "Unemployment falls to a two-year low and consumer confidence improves",
    "Lender recovers all customer funds after the hack, token soars",
    "Layer two networks see record adoption as fees drop to a cent. Developers say usage keeps "
    "growing every week and new applications launch daily",
    "Bank partnership brings crypto custody to millions of customers. Shares of the custodian "
    "rise sharply on the news",
    "Bullish momentum builds as bitcoin breaks out of its three-month range",
    "Court rules in favour of the exchange, ending a long legal fight with the regulator",
    # bearish / negative wording
    "Bitcoin tumbles ten percent as leveraged longs are liquidated overnight",
    "Exchange halts withdrawals after hackers drain its hot wallet",
    "Token crashes to near zero after developers abandon the project",
    "Regulator sues crypto lender over alleged fraud and misleading investors",
    "Stocks slump as recession fears deepen and yields spike",
    "Ether falls below key support as outflows from funds continue",
    "Stablecoin loses its peg and panic spreads across decentralised finance",
    "Mining company files for bankruptcy after hashprice collapses",
    "Retailer cuts its outlook and warns of weak holiday sales",
    "Inflation comes in hotter than expected, sending markets sharply lower",
    "Bridge exploit costs users hundreds of millions in stolen tokens",
    "Country bans crypto trading and orders exchanges to shut down",
    "Bank shares plunge on fears of heavy losses in its bond portfolio",
    "Investors flee meme coins as prices sink for a third straight week",
    "Founder arrested on charges of wire fraud and money laundering",
    "Network outage freezes transactions for hours, validators blame a bug",
    "Whales dump holdings as bearish sentiment grips the market. Analysts warn the sell-off may "
    "not be over and that liquidity is thin",
    "Exchange token slides after auditors question its reserves. Users rush to pull deposits "
    "amid concerns about insolvency",
    "Factory output shrinks again and layoffs rise across manufacturing",
    "Lawsuit alleges the protocol misled users about its security",
    # neutral / mixed wording
    "Bitcoin trades sideways as markets wait for the central bank decision",
    "Ethereum developers schedule the next upgrade for the second quarter",
    "Exchange publishes its monthly proof of reserves report",
    "Federal Reserve keeps interest rates unchanged, as widely expected",
    "Crypto market capitalisation holds steady over the weekend",
    "Regulator opens a public consultation on stablecoin rules",
    "Index provider adds two digital asset companies to its small-cap benchmark",
    "Trading volumes were flat this week across major exchanges",
    "Analysts expect mixed quarterly results from technology companies",
    "The treasury will auction ten-year notes on Wednesday",
    "Bitcoin hashrate is little changed from last month",
    "Stablecoin issuer names a new chief financial officer",
    "Oil prices hover near last week's levels ahead of the producers meeting",
    "Polkadot governance vote on the treasury proposal closes on Friday",
    "Exchange to list three new tokens next week, pending final checks",
    "The dollar is unchanged against the euro in quiet holiday trading",
    "Conference on blockchain payments opens in Singapore. Speakers include central bankers, "
    "exchange executives and academics",
    "Wallet provider releases a software update with minor bug fixes. The company says no user "
    "action is required",
    "Options traders see an equal chance of a move up or down by month end",
    "Quarterly report shows both revenue and costs rose at the same pace",
)
