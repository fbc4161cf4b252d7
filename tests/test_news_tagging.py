"""The tagging rules (cryptoetl.news_tagging's docstring) over a universe of ~300 coins: real-looking
headlines with the exact mentions they must give, colliding tickers, and the term kinds."""

from __future__ import annotations

import random
import re

import pytest

from cryptoetl.config import UNIVERSE
from cryptoetl.news_tagging import CRYPTO, GENERAL, Tagger
from cryptoetl.news_tagging_rules import CASHTAG_ONLY, COMMON, STRONG, WEAK, Vocabulary, trie_pattern
from cryptoetl.universe import assign_keys, suffixed_key

# Top coins by market cap as CoinGecko names them ("TICKER Name"), then clones of two tickers and
# synthetic coins up to 300.
REAL = """
BTC Bitcoin; ETH Ethereum; USDT Tether; XRP XRP; BNB BNB; SOL Solana; USDC USDC; DOGE Dogecoin; TRX TRON
ADA Cardano; STETH Lido Staked Ether; WBTC Wrapped Bitcoin; HYPE Hyperliquid; LINK Chainlink; SUI Sui
XLM Stellar; BCH Bitcoin Cash; AVAX Avalanche; HBAR Hedera; LEO LEO Token; TON Toncoin; SHIB Shiba Inu
LTC Litecoin; DOT Polkadot; XMR Monero; DAI Dai; PEPE Pepe; BGB Bitget Token; ENA Ethena; UNI Uniswap
APT Aptos; NEAR NEAR Protocol; OKB OKB; ONDO Ondo; TAO Bittensor; ICP Internet Computer; ETC Ethereum Classic
AAVE Aave; CRO Cronos; POL POL (ex-MATIC); KAS Kaspa; VET VeChain; TRUMP Official Trump; RENDER Render
ATOM Cosmos Hub; FIL Filecoin; ARB Arbitrum; ALGO Algorand; FET Artificial Superintelligence Alliance
OP Optimism; JUP Jupiter; TIA Celestia; INJ Injective; STX Stacks; WLD Worldcoin; IMX Immutable
GRT The Graph; MKR Maker; SEI Sei; BONK Bonk; THETA Theta Network; FLR Flare; XDC XDC Network; MNT Mantle
QNT Quant; SAND The Sandbox; GALA GALA; FLOW Flow; AXS Axie Infinity; MANA Decentraland; XTZ Tezos; EOS EOS
NEO NEO; IOTA IOTA; KAIA Kaia; CHZ Chiliz; EGLD MultiversX; MINA Mina Protocol; CAKE PancakeSwap
CRV Curve DAO Token; LDO Lido DAO; HNT Helium; JASMY JasmyCoin; RAY Raydium; PENDLE Pendle; RUNE THORChain
DASH Dash; ZEC Zcash; COMP Compound; SNX Synthetix; GNO Gnosis; BEAM Beam; BLUR Blur; CORE Core; KAVA Kava
CFX Conflux; FLOKI FLOKI; WIF dogwifhat; PYTH Pyth Network; W Wormhole; JTO Jito; STRK Starknet; ZK ZKsync
OSMO Osmosis; AKT Akash Network; AR Arweave; KSM Kusama; WAVES Waves; ZIL Zilliqa; ANKR Ankr; STORJ Storj
AUDIO Audius; LRC Loopring; SC Siacoin; HOT Holo; ICX ICON; ONT Ontology; CKB Nervos Network; SKL SKALE
LPT Livepeer; BICO Biconomy; NOT Notcoin; ORDI ORDI; ASTR Astar; RON Ronin; FRAX Frax; DYDX dYdX
ONE Harmony; GAS Gas; MASK Mask Network; BAND Band Protocol; FUN FUNToken; SUPER SuperVerse; ACE Fusionist
ID SPACE ID; OCEAN Ocean Protocol; ROSE Oasis; QUICK QuickSwap; SAFE Safe; PRIME Echelon Prime
VANRY Vanar Chain; ENS Ethereum Name Service; BAT Basic Attention; ENJ Enjin Coin; 1INCH 1inch
YFI yearn.finance; SUSHI SushiSwap; BAL Balancer; UMA UMA; ZRX 0x Protocol; CVC Civic; SNT Status
REQ Request; NMR Numeraire; POWR Powerledger; CTSI Cartesi; ARK Ark; STEEM Steem; HIVE Hive; LSK Lisk
XNO Nano; ZEN Horizen; DGB DigiByte; XVG Verge; RVN Ravencoin; DCR Decred; GLM Golem; QTUM Qtum; KDA Kadena
GLMR Moonbeam; CELR Celer Network; COTI COTI; CHR Chromia; DENT Dent; WIN WINkLink; BTT BitTorrent
SUN Sun Token; JST JUST; AMP Amp; CELO Celo; APE ApeCoin; BSV Bitcoin SV; XEC eCash; IP Story
MOVE Movement; BERA Berachain; KAITO KAITO; S Sonic; PENGU Pudgy Penguins; PI Pi Network
VIRTUAL Virtuals Protocol; AERO Aerodrome Finance; ATH Aethir; IO io.net; ARKM Arkham; BRETT Brett
POPCAT Popcat; MOG Mog Coin; TURBO Turbo; BOME BOOK OF MEME; MEW cat in a dogs world; NEXO NEXO
TWT Trust Wallet Token; SFP SafePal; USDE Ethena USDe; FDUSD First Digital USD; PYUSD PayPal USD
GT GateToken; KCS KuCoin Token; WLFI World Liberty Financial; SKY Sky; USUAL Usual; SPX SPX6900
FARTCOIN Fartcoin; AI16Z ai16z; MORPHO Morpho; EIGEN EigenLayer; ETHFI ether.fi; ZRO LayerZero
IT Infinity Token
"""
# Lower-ranked coins sharing a ticker with one above: universe.assign_keys suffixes their keys.
CLONES = (("unicorn-inu", "uni", "Unicorn Inu"), ("chainlink-wormhole", "link", "Chainlink (Wormhole)"),
          ("one-finance", "one", "One Finance"))
UNI2, LINK2, ONE2 = (suffixed_key(t.upper(), cid) for cid, t, _ in CLONES)  # "UNI-xxxx" ...


def _real() -> list[tuple[str, str, str]]:
    rows = []
    for item in filter(None, (part.strip() for part in REAL.replace("\n", ";").split(";"))):
        ticker, name = item.split(" ", 1)
        rows.append((re.sub(r"\W+", "-", name.lower()).strip("-"), ticker, name))
    return rows


def synthetic(n: int, seed: int = 7) -> list[tuple[str, str, str]]:
    """``n`` made-up coins (id, ticker, name) with pronounceable names ("Vorabex")."""
    rng = random.Random(seed)
    out: list[tuple[str, str, str]] = []
    while len(out) < n:
        name = "".join(rng.choice("bdfgkmnprstvxz") + rng.choice("aeiou") for _ in range(3)).capitalize()
        out.append((f"synthetic-{seed}-{len(out)}", f"{name[:3]}{len(out)}", f"{name}ex"))
    return out


ROWS = _real() + list(CLONES)
ROWS += synthetic(300 - len(ROWS))
COINS = assign_keys(ROWS)  # in rank order, keyed as the universe step keys them


@pytest.fixture(scope="module")
def tagger() -> Tagger:
    return Tagger(COINS)


def test_the_test_universe_is_realistic():
    keys = [c.symbol for c in COINS]
    assert len(keys) == len(set(keys)) == 300
    assert {c.symbol for c in UNIVERSE} <= set(keys)
    assert [c.symbol for c in COINS if c.symbol != c.ticker] == [UNI2, LINK2, ONE2]


# (headline, exact mentions): the rules at work on a 300-coin universe.
HEADLINES = [
    ("Near Protocol (NEAR) unveils AI agent platform", ["NEAR"]),
    ("Near Protocol unveils AI agent platform on its blockchain", ["NEAR"]),
    ("Near Protocol unveils AI agent platform", []),  # weak name, no strong evidence
    ("Fed officials near agreement on rates", []),
    ("Gas fees spike on Ethereum", ["ETH"]),  # "Gas" at the start of a sentence is the word
    ("Bitcoin Hits New High As Gas Fees Spike", ["BTC"]),  # Title Case: capitals mark nothing
    ("Traders eye Safe and Sky as Bitcoin steadies", ["BTC", "SAFE", "SKY"]),
    ("Safe to say Bitcoin is back", ["BTC"]),
    ("$ONE surges 20% after Harmony bridge relaunch", ["ONE"]),
    ("Harmony ONE bridge hacker moves funds", ["ONE"]),  # weak name + weak ticker of one coin
    ("Harmony Korine's new film premieres", []),
    ("The One thing investors miss about bond yields", []),
    ("UNI rallies after Uniswap fee switch vote", ["UNI"]),  # the bare ticker is the key holder's
    ("$UNI jumps 12% as DeFi volumes recover", ["UNI"]),
    ("Unicorn Inu (UNI) lists on Raydium as memecoins rally", ["RAY", UNI2]),
    (f"{UNI2} holders vote to burn supply", [UNI2]),
    ("Chainlink (Wormhole) volumes double", [LINK2]),
    ("Chainlink's LINK token powers price feeds", ["LINK"]),
    ("Render soars as AI crypto tokens rally", ["RENDER"]),
    ("Celestia (TIA) launches blob market", ["TIA"]),
    ("Maker votes to raise DAI savings rate", ["DAI", "MKR"]),
    ("Compound interest and the maker movement", []),
    ("The Graph integrates with Arbitrum", ["ARB", "GRT"]),
    ("Graph shows oil prices falling", []),
    ("Mask Network (MASK) jumps 30% as crypto markets rebound", ["MASK"]),
    ("Band Protocol integrates Chainlink price feeds", ["BAND", "LINK"]),
    ("Fun run raises money for charity", []),
    ("SUPER and ACE lead gaming tokens as Bitcoin steadies", ["ACE", "BTC", "SUPER"]),
    ("IT outage hits Bitcoin exchange", ["BTC"]),  # two-letter tickers only as $IT
    ("New ATH for Bitcoin as ETF inflows surge", ["BTC"]),  # ATH is all-time high, not Aethir
    ("SPX falls 2% as tech sells off", []),  # the S&P 500, not SPX6900
    ("Seagate (NASDAQ: STX) beats estimates", []),  # a share, not Stacks
    ("Stacks (STX) activates Nakamoto upgrade", ["STX"]),
    ("Arkham Knight sequel teased by Warner Bros", []),  # WEAK_NAMES
    ("$S and $W rally as Sonic and Wormhole ship upgrades", ["S", "W"]),
    ("Pi Network (PI) opens its mainnet", ["PI"]),
    ("PancakeSwap (CAKE) burns supply", ["CAKE"]),
    ("Cake sales rise as bakeries thrive", []),
    ("Ethereum Classic (ETC) hash rate hits record", ["ETC"]),  # the longest name wins
    ("Bitcoin Cash and Bitcoin both rise", ["BCH", "BTC"]),
    ("Stellar earnings from Apple lift Nasdaq", []),
    ("Stellar (XLM) partners with MoneyGram", ["XLM"]),
    ("Mina Protocol ships zkApps upgrade; MINA up 8%", ["MINA"]),
    ("Sui network restarts after outage; SUI down 5%", ["SUI"]),
    ("Quant funds cut risk as volatility rises", []),
    ("Quant (QNT) rallies on bank tokenisation pilot", ["QNT"]),
    ("Official Trump memecoin unlock looms", ["TRUMP"]),
    ("Trump official says tariffs stay", []),
    ("Tron: Ares tops the box office", []),
    ("TRON (TRX) stablecoin volume hits record", ["TRX"]),
    ("Avalanche warning issued for the Alps", []),
    ("Shiba Inu and Pepe lead memecoins higher", ["PEPE", "SHIB"]),
]


@pytest.mark.parametrize("text,expected", HEADLINES, ids=[h for h, _ in HEADLINES])
def test_headline_mentions(tagger, text, expected):
    mentions, category = tagger.analyse(text)
    assert mentions == expected
    if expected:
        assert category == CRYPTO


@pytest.mark.parametrize("text", [
    "Fed officials near agreement on rates", "The One thing investors miss about bond yields",
    "Compound interest and the maker movement", "Graph shows oil prices falling", "Fun run raises money for charity",
    "Cake sales rise as bakeries thrive", "Stellar earnings from Apple lift Nasdaq", "SPX falls 2% as tech sells off",
    "Quant funds cut risk as volatility rises", "Trump official says tariffs stay", "Tron: Ares tops the box office",
    "Avalanche warning issued for the Alps", "S&P 500 slips as U.S. yields climb", "IT spending rises at banks",
    "Safe havens gain as Core inflation cools", "Theta waves and sleep: a new study", "Jupiter's moons in view",
])
def test_general_news_stays_general(tagger, text):
    assert tagger.analyse(text) == ([], GENERAL)


def test_mentions_are_limited_to_the_given_coins_but_the_category_sees_all_of_them():
    tagger = Tagger(COINS[:2])  # BTC, ETH
    assert tagger.analyse("Cardano (ADA) rallies") == ([], CRYPTO)  # config.UNIVERSE is always seen
    assert tagger.analyse("Celestia (TIA) rallies") == ([], GENERAL)  # other coins only when given
    assert tagger.analyse("Bitcoin and Celestia rally", "Ether follows") == (["BTC", "ETH"], CRYPTO)


def test_title_and_summary_are_searched_separately():
    tagger = Tagger(COINS)
    assert tagger.mentions("Bitcoin", "Cash is king again") == ["BTC"]  # not "Bitcoin Cash"
    assert tagger.mentions("Maker votes on rates", "Bitcoin steadies") == ["BTC", "MKR"]  # evidence from either


def test_a_ticker_mention_credits_one_coin_only():
    vocabulary = Vocabulary(COINS)
    for text, _ in HEADLINES:
        mentions = vocabulary.scan(text)
        assert all(a.end <= b.start for a, b in zip(mentions, mentions[1:], strict=False)), text
    text = f"UNI {UNI2} $UNI ${UNI2.lower()}"
    assert [m.key for m in vocabulary.scan(text)] == ["UNI", UNI2, "UNI", UNI2]


def test_a_shared_name_belongs_to_the_bare_ticker_holder():
    clone_first = [next(c for c in COINS if c.symbol == LINK2), *COINS]  # "Chainlink" still goes to LINK
    assert Tagger(clone_first).mentions("Chainlink rallies") == ["LINK"]


@pytest.mark.parametrize("key,kind", [
    ("BTC", STRONG), ("ETH", STRONG), ("SUI", STRONG), ("MINA", STRONG), ("TIA", WEAK), ("XLM", STRONG),
    ("NEAR", WEAK), ("ONE", WEAK), ("GAS", WEAK), ("MASK", WEAK), ("BAND", WEAK), ("FUN", WEAK), ("CAKE", WEAK),
    ("SUPER", WEAK), ("ACE", WEAK), ("UNI", WEAK), ("DOT", WEAK), ("ADA", WEAK), ("EOS", WEAK),
    ("OP", CASHTAG_ONLY), ("ID", CASHTAG_ONLY), ("IT", CASHTAG_ONLY), ("S", CASHTAG_ONLY), ("ATH", CASHTAG_ONLY),
    ("SPX", CASHTAG_ONLY), (UNI2, STRONG), (ONE2, STRONG),
])
def test_ticker_kinds(key, kind):
    assert Vocabulary(COINS).tickers[key].kind == kind


@pytest.mark.parametrize("name,kind", [
    ("bitcoin", STRONG), ("celestia", STRONG), ("uniswap", STRONG), ("bitcoin cash", STRONG), ("shiba inu", STRONG),
    ("near protocol", WEAK), ("the graph", WEAK), ("render", WEAK), ("maker", WEAK), ("compound", WEAK),
    ("internet computer", WEAK), ("quant", WEAK), ("ripple", WEAK), ("avalanche", WEAK), ("tether", WEAK),
    ("tron", WEAK), ("pepe", WEAK), ("gas", COMMON), ("safe", COMMON), ("flow", COMMON), ("core", COMMON),
])
def test_name_kinds(name, kind):
    assert Vocabulary(COINS).names[name].kind == kind


def test_trie_pattern_matches_exactly_its_terms_longest_first():
    pattern = re.compile(rf"(?:{trie_pattern(['bitcoin', 'bitcoin cash', 'bit', 'eth'])})(?!\w)")
    assert [m.group() for m in pattern.finditer("bitcoin  cash, bit, bitcoin, eth, ethe")] == [
        "bitcoin  cash", "bit", "bitcoin", "eth"]
    assert re.compile(trie_pattern([])).search("anything") is None


def test_500_coins_give_the_same_mentions(tagger):
    """200 more synthetic coins change nothing for the headlines (speed is measured outside the tests)."""
    bigger = Tagger(assign_keys(ROWS + synthetic(200, seed=11)))
    texts = [h for h, _ in HEADLINES]
    assert [bigger.analyse(t) for t in texts] == [tagger.analyse(t) for t in texts]
