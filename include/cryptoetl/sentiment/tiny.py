"""Tiny SYNTHETIC sentiment models, built fully offline, for the tests and the offline demo.

    python -m cryptoetl.sentiment.tiny --out DIR     # writes DIR/cryptobert and DIR/finbert

- ``cryptobert``: a 2-layer RoBERTa classifier with CryptoBERT's label order
  {0: Bearish, 1: Neutral, 2: Bullish} and a byte-level BPE tokenizer trained on the word list below;
  128 usable positions like CryptoBERT's trained length.
- ``finbert``: a 2-layer BERT classifier with FinBERT's label order {0: positive, 1: negative,
  2: neutral} and a lower-casing WordPiece tokenizer whose vocabulary is the word list below plus
  single characters.

The weights are RANDOM (seeded): the scores are deterministic but NOT meaningful. Each config.json
carries ``"cryptoetl_synthetic": true``: the step logs a loud warning and marks the rows
``is_synthetic``. The same seed gives byte-identical files, so rebuilding the demo models keeps
their content-hash revision and nothing is scored again. A few hundred KB each.
"""

from __future__ import annotations

import argparse
import string
import sys
from pathlib import Path

# A small in-repo word list: crypto and market vocabulary, enough for readable tokenization.
WORDS = """
bitcoin btc ethereum eth solana sol bnb xrp ripple cardano ada dogecoin doge avalanche avax polkadot dot
chainlink link crypto cryptocurrency token tokens coin coins stablecoin stablecoins defi nft blockchain chain
onchain wallet wallets exchange exchanges etf etfs sec regulator regulators regulation lawsuit court approval
approved approves reject rejected rejects ban banned hack hacked exploit exploited outage fork upgrade mainnet
testnet staking stake yield miners mining hashrate halving whale whales liquidity liquidation liquidations
leverage futures options derivatives spot volume volumes price prices market markets rally rallies surge
surges soar soars jump jumps gain gains climb climbs rise rises rising record high highs bull bullish bulls
breakout recovery rebound adoption inflows inflow partnership launch launches integration growth strong
strength optimism upbeat profit profits beat beats outperform upgrade upgraded drop drops fall falls
plunge plunges crash crashes slump slumps tumble tumbles decline declines sink sinks low lows bear bearish
bears selloff sell sells selling dump dumps fear fears panic loss losses outflow outflows weak weakness
warning warns risk risks downgrade downgraded miss misses bankruptcy insolvent fraud scam investigation probe
fine fined tariff tariffs inflation recession unemployment jobs payrolls rates rate hike hikes cut cuts fed
federal reserve ecb central bank banks treasury yields bond bonds dollar euro stocks stock shares equities
index nasdaq dow earnings revenue guidance quarter quarterly annual report reports analyst analysts investors
investor traders trader institutional retail fund funds asset assets billion million percent week weekly
month monthly year today yesterday tomorrow says said according amid after before despite while as the a an
of to in on for with at by from and or but not no is are was were be been has have had will would could new
first last next more most less least up down over under above below again still steady flat mixed unchanged
neutral calm sideways range consolidation consolidates holds hold stable outlook forecast expects expected
""".split()

SYNTHETIC_NOTE = "SYNTHETIC tiny random model: scores are not meaningful"
CRYPTOBERT_LABELS = {0: "Bearish", 1: "Neutral", 2: "Bullish"}
FINBERT_LABELS = {0: "positive", 1: "negative", 2: "neutral"}
_TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
         # wider than BERT's 0.02 so that random scores spread over texts (tests compare them)
         "initializer_range": 0.5}


def _corpus() -> list[str]:
    lines = [" ".join(WORDS[i:i + 12]) for i in range(0, len(WORDS), 12)]
    return lines + [w.capitalize() for w in WORDS] + [string.ascii_letters + string.digits + string.punctuation]


def bpe_tokenizer():
    """Byte-level BPE (RoBERTa style: <s> ... </s>, pad id 1) trained on the word list."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1200, min_frequency=1, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_corpus(), trainer=trainer)
    tok.post_processor = processors.RobertaProcessing(("</s>", tok.token_to_id("</s>")),
                                                      ("<s>", tok.token_to_id("<s>")), trim_offsets=True)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", sep_token="</s>",
                                   cls_token="<s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>",
                                   model_max_length=128)


def wordpiece_tokenizer():
    """Lower-casing WordPiece (BERT style: [CLS] ... [SEP], pad id 0) over the word list + characters."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = sorted(set(string.ascii_lowercase + string.digits + string.punctuation))
    vocab_list = specials + chars + [f"##{c}" for c in chars] + sorted(set(WORDS) - set(chars))
    vocab = {token: i for i, token in enumerate(dict.fromkeys(vocab_list))}
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]",
                                   cls_token="[CLS]", mask_token="[MASK]", model_max_length=512)


def _save(out: Path, model, tokenizer, title: str) -> Path:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "README.md").write_text(f"# {title}\n\n{SYNTHETIC_NOTE}.\n\nBuilt offline by "
                                   "`python -m cryptoetl.sentiment.tiny` (seeded random weights).\n")
    return out


def build_cryptobert(out: Path, seed: int = 0, id2label: dict[int, str] | None = None) -> Path:
    """A tiny RoBERTa classifier with CryptoBERT's label order (or ``id2label``), saved to ``out``."""
    import torch
    from transformers import RobertaConfig, RobertaForSequenceClassification

    tokenizer = bpe_tokenizer()
    labels = id2label or CRYPTOBERT_LABELS
    config = RobertaConfig(vocab_size=len(tokenizer), max_position_embeddings=130, type_vocab_size=1,
                           pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                           eos_token_id=tokenizer.eos_token_id, layer_norm_eps=1e-5, id2label=labels,
                           label2id={v: k for k, v in labels.items()}, cryptoetl_synthetic=True, **_TINY)
    torch.manual_seed(seed)
    model = RobertaForSequenceClassification(config)
    return _save(Path(out), model, tokenizer, "Tiny CryptoBERT stand-in")


def build_finbert(out: Path, seed: int = 1, id2label: dict[int, str] | None = None) -> Path:
    """A tiny BERT classifier with FinBERT's label order (or ``id2label``), saved to ``out``."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    tokenizer = wordpiece_tokenizer()
    labels = id2label or FINBERT_LABELS
    config = BertConfig(vocab_size=len(tokenizer), max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id,
                        id2label=labels, label2id={v: k for k, v in labels.items()}, cryptoetl_synthetic=True,
                        **_TINY)
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config)
    return _save(Path(out), model, tokenizer, "Tiny FinBERT stand-in")


def build_all(out: Path) -> dict[str, Path]:
    out = Path(out)
    return {"cryptobert": build_cryptobert(out / "cryptobert"), "finbert": build_finbert(out / "finbert")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cryptoetl.sentiment.tiny",
                                     description="Build the tiny SYNTHETIC sentiment models (offline).")
    parser.add_argument("--out", required=True, help="directory; gets cryptobert/ and finbert/")
    args = parser.parse_args(argv)
    paths = build_all(Path(args.out))
    for key, path in paths.items():
        print(f"{key}: {path}  ({SYNTHETIC_NOTE})")
    print(f"export CRYPTOETL_CRYPTOBERT_PATH={paths['cryptobert']} CRYPTOETL_FINBERT_PATH={paths['finbert']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
