"""Sentiment models: where they come from, which revision they are, and batched scoring on CPU.

Sources, in order (nothing is ever downloaded at run time):

1. ``CRYPTOETL_CRYPTOBERT_PATH`` / ``CRYPTOETL_FINBERT_PATH``: a local directory written by
   ``save_pretrained`` or a Hugging Face cache snapshot directory (the sentiment image bakes these);
2. else the Hugging Face cache (``HF_HOME`` / ``HF_HUB_CACHE``), looked up with
   ``local_files_only=True``.

Revision (stored with every score; an article is scored once per revision):

- a Hugging Face snapshot directory (``.../snapshots/<40-hex commit>``): that commit hash;
- any other directory: ``sha256:<16 hex>`` of the config, weight and tokenizer files' contents, so a
  changed model is a new revision;
- ``+int8`` appended when the model runs with dynamic int8 quantization, so quantized scores are
  never mixed with fp32 ones under one revision. Forced (``CRYPTOETL_SENTIMENT_INT8=1``) it is known
  before loading; under ``auto`` (the default) the precision gate (``sentiment/precision.py``) decides
  at load time, so ``ModelHandle.revision`` loads the model, and ``ModelHandle.revisions`` (both
  candidates) is what the step checks stored rows against without loading anything.

Labels are read from ``model.config.id2label``, never from positions: CryptoBERT's order is
{0: Bearish, 1: Neutral, 2: Bullish}, FinBERT's {0: positive, 1: negative, 2: neutral}.
Bullish/positive -> positive, bearish/negative -> negative, neutral -> neutral (case-insensitive);
any other label set is an ``UnknownLabels`` error.

Scoring (``SentimentModel.score``): tokenize every text once with the model's tokenizer (batched,
no padding, truncated to the model's length), sort by token length, cut batches of
``batch_size``, pad each batch only to its longest item, run under ``torch.inference_mode()`` with
the model in eval mode, softmax, and put the rows back in input order.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cryptoetl.config import ConfigError, SentimentSettings
from cryptoetl.sentiment.precision import INT8_SUFFIX, GateDecision, GateRecords, choose_precision, quantize_int8

log = logging.getLogger(__name__)

CANONICAL_LABELS = ("positive", "negative", "neutral")  # column order of every probability array
LABEL_ALIASES = {"positive": "positive", "bullish": "positive", "negative": "negative", "bearish": "negative",
                 "neutral": "neutral"}
SYNTHETIC_KEY = "cryptoetl_synthetic"  # config.json flag of the tiny demo/test models (sentiment/tiny.py)
# Files that define a model's behaviour: hashed into the revision of a non-snapshot directory.
_REVISION_FILES = re.compile(
    r"^(config\.json|.*\.safetensors|.*\.safetensors\.index\.json|pytorch_model.*\.bin|pytorch_model\.bin\.index\.json"
    r"|tokenizer\.json|tokenizer_config\.json|special_tokens_map\.json|added_tokens\.json|vocab\.(txt|json)"
    r"|merges\.txt|bpe\.codes)$")
_SNAPSHOT_COMMIT = re.compile(r"^[0-9a-f]{40}$")
# RoBERTa-family position ids start after the padding index: usable length = positions - pad - 1.
_OFFSET_POSITION_TYPES = {"roberta", "xlm-roberta", "camembert", "bertweet", "longformer"}


class SentimentModelError(ConfigError):
    """A sentiment model is missing or unusable. A configuration problem: the CLI exits with 2."""


class ModelNotAvailable(SentimentModelError):
    """The model is neither in the configured directory nor in the local Hugging Face cache."""


class UnknownLabels(SentimentModelError):
    """The model's id2label is not a {positive|bullish, negative|bearish, neutral} set."""


@dataclass(frozen=True)
class ModelSpec:
    """One model role of the step, from the settings."""

    key: str  # "cryptobert" | "finbert": the role (crypto_sentiment_data.model_key)
    model_id: str  # stored as crypto_sentiment_data.model_id
    path: str | None
    path_env: str  # the variable that sets ``path``, for error messages
    max_length: int
    int8: bool | None = None  # None: auto, the precision gate decides at load time; True: int8; False: fp32

    @classmethod
    def from_settings(cls, settings: SentimentSettings, key: str) -> ModelSpec:
        if key == "cryptobert":
            return cls(key, settings.cryptobert_model_id, settings.cryptobert_path, "CRYPTOETL_CRYPTOBERT_PATH",
                       settings.cryptobert_max_length, settings.int8)
        if key == "finbert":
            return cls(key, settings.finbert_model_id, settings.finbert_path, "CRYPTOETL_FINBERT_PATH",
                       settings.finbert_max_length, settings.int8)
        raise ValueError(f"unknown sentiment model key {key!r}; known: cryptobert, finbert")


@dataclass(frozen=True)
class ResolvedModel:
    """A model found on disk, identified, not loaded (no torch needed)."""

    spec: ModelSpec
    path: Path
    revision: str  # with the +int8 suffix when int8 is forced; under auto, the fp32 revision
    synthetic: bool


# -- finding and identifying ---------------------------------------------------------------------

def _not_available(spec: ModelSpec, why: str) -> ModelNotAvailable:
    return ModelNotAvailable(
        f"sentiment model {spec.model_id!r} ({spec.key}) is not available: {why}. Nothing is downloaded at run "
        f"time. Set {spec.path_env} to a local model directory (on a machine with internet: "
        f"`hf download {spec.model_id} --revision <commit> --local-dir DIR`, or save_pretrained), or put it in "
        f"the Hugging Face cache (HF_HOME), or run the sentiment image, which bakes both models in "
        f"(`docker build --target sentiment`). For an offline demo: `python -m cryptoetl.sentiment.tiny --out DIR` "
        f"builds SYNTHETIC tiny models. See docs/SENTIMENT.md")


def resolve(spec: ModelSpec) -> ResolvedModel:
    """Find the model directory and compute its revision; raises ModelNotAvailable."""
    if spec.path:
        path = Path(spec.path).expanduser()
        if not path.is_dir():
            raise _not_available(spec, f"{spec.path_env}={spec.path!r} is not a directory")
        if not (path / "config.json").is_file():
            raise _not_available(spec, f"{spec.path_env}={spec.path!r} has no config.json")
    else:
        from huggingface_hub import snapshot_download

        try:
            path = Path(snapshot_download(spec.model_id, local_files_only=True))
        except Exception as exc:  # noqa: BLE001 - LocalEntryNotFoundError, offline mode, bad repo id...
            raise _not_available(spec, f"{spec.path_env} is not set and it is not in the local Hugging Face cache "
                                       f"({type(exc).__name__})") from exc
        if not (path / "config.json").is_file():
            raise _not_available(spec, f"the cached snapshot {path} has no config.json")
    if path.parent.name == "snapshots" and _SNAPSHOT_COMMIT.match(path.name):
        revision = path.name
    else:
        revision = content_revision(path)
    if spec.int8 is True:
        revision += INT8_SUFFIX
    config = json.loads((path / "config.json").read_text())
    synthetic = bool(config.get(SYNTHETIC_KEY, False))
    return ResolvedModel(spec, path, revision, synthetic)


def content_revision(path: Path) -> str:
    """``sha256:<16 hex>`` over the names and contents of the config, weight and tokenizer files."""
    digest = hashlib.sha256()
    files = sorted(p for p in Path(path).iterdir() if p.is_file() and _REVISION_FILES.match(p.name))
    if not any(p.name.endswith((".safetensors", ".bin")) for p in files):
        raise ModelNotAvailable(f"model directory {path} has no weights (*.safetensors or pytorch_model*.bin)")
    for file in files:
        digest.update(file.name.encode() + b"\0")
        with file.open("rb") as fh:
            while chunk := fh.read(1 << 22):
                digest.update(chunk)
        digest.update(b"\0")
    return "sha256:" + digest.hexdigest()[:16]


def label_columns(id2label: dict) -> tuple[int, int, int]:
    """Output indices of (positive, negative, neutral) from a model's id2label."""
    mapped: dict[str, int] = {}
    raw = {int(k): str(v) for k, v in dict(id2label or {}).items()}
    for index, label in sorted(raw.items()):
        canonical = LABEL_ALIASES.get(label.strip().lower())
        if canonical is None or canonical in mapped:
            mapped = {}
            break
        mapped[canonical] = index
    if set(mapped) != set(CANONICAL_LABELS) or len(raw) != 3:
        raise UnknownLabels(
            f"unknown label set {raw}: expected three labels, one each of bullish|positive, bearish|negative and "
            "neutral (case-insensitive)")
    return mapped["positive"], mapped["negative"], mapped["neutral"]


def available_cpus() -> int:
    """CPUs this process may use: the cgroup CPU quota (a pod's CPU limit) if there is one, else the
    CPU affinity set."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    quota = None
    try:  # cgroup v2
        raw_quota, raw_period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if raw_quota != "max":
            quota = int(raw_quota) / int(raw_period)
    except (OSError, ValueError):
        try:  # cgroup v1
            q = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
            p = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
            if q > 0 and p > 0:
                quota = q / p
        except (OSError, ValueError):
            pass
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    return max(1, cpus)


def torch_threads(configured: int | None) -> int:
    return configured or available_cpus()


# -- loading and scoring -------------------------------------------------------------------------

class SentimentModel:
    """A loaded classifier and its tokenizer, scoring texts on CPU. ``revision`` is the one its
    scores are stored under (``+int8`` when ``model`` is the int8 copy); ``gate`` the precision
    gate's decision when it ran (auto)."""

    def __init__(self, resolved: ResolvedModel, model, tokenizer, max_length: int, revision: str | None = None):
        self.resolved = resolved
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.revision = revision or resolved.revision
        self.gate: GateDecision | None = None
        self.columns = label_columns(model.config.id2label)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.pad_left = getattr(tokenizer, "padding_side", "right") == "left"

    @property
    def precision(self) -> str:
        return "int8" if self.revision.endswith(INT8_SUFFIX) else "fp32"

    def with_model(self, model, revision: str) -> SentimentModel:
        """The same tokenizer and limits around another network (the int8 copy)."""
        return SentimentModel(self.resolved, model, self.tokenizer, self.max_length, revision)

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of every text, truncated to ``max_length``, unpadded (one batched call)."""
        if not texts:
            return []
        return self.tokenizer(list(texts), truncation=True, max_length=self.max_length, padding=False,
                              return_attention_mask=False, return_token_type_ids=False)["input_ids"]

    def batches(self, ids: Sequence[Sequence[int]], batch_size: int) -> list[tuple[list[int], dict]]:
        """Length-sorted batches, each padded to its own longest item: (input positions, model inputs)."""
        import torch

        order = sorted(range(len(ids)), key=lambda i: (len(ids[i]), i))
        out = []
        for lo in range(0, len(order), batch_size):
            idx = order[lo:lo + batch_size]
            width = max(len(ids[i]) for i in idx)
            input_ids = torch.full((len(idx), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):
                seq = ids[i]
                cols = slice(width - len(seq), width) if self.pad_left else slice(0, len(seq))
                input_ids[row, cols] = torch.tensor(seq, dtype=torch.long)
                mask[row, cols] = 1
            out.append((idx, {"input_ids": input_ids, "attention_mask": mask}))
        return out

    def forward(self, inputs: dict) -> np.ndarray:
        """Probabilities of one padded batch, columns (positive, negative, neutral)."""
        import torch

        with torch.inference_mode():
            logits = self.model(**inputs).logits
            probs = torch.softmax(logits.float(), dim=-1)
        return probs[:, list(self.columns)].double().numpy()

    def score(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """(n, 3) probabilities (positive, negative, neutral) in the order of ``texts``."""
        probs = np.empty((len(texts), 3), dtype=np.float64)
        for idx, inputs in self.batches(self.encode(texts), batch_size):
            probs[idx] = self.forward(inputs)
        return probs


def model_max_length(spec_limit: int, config, tokenizer) -> int:
    """The shortest of the configured cap, the model's position embeddings and the tokenizer's limit."""
    limit = spec_limit
    positions = getattr(config, "max_position_embeddings", None)
    if positions:
        if getattr(config, "model_type", "") in _OFFSET_POSITION_TYPES:
            positions -= (config.pad_token_id or 0) + 1
        limit = min(limit, positions)
    tok_limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(tok_limit, int) and 0 < tok_limit < 1_000_000:
        limit = min(limit, tok_limit)
    return limit


def load(resolved: ResolvedModel, threads: int | None = None, records: GateRecords | None = None) -> SentimentModel:
    """Load weights and tokenizer from the resolved directory (offline), eval mode; int8 when forced,
    or when the precision gate accepts it (auto; ``records``: where its decisions are kept)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    spec = resolved.spec
    n_threads = torch_threads(threads)
    if torch.get_num_threads() != n_threads:
        torch.set_num_threads(n_threads)
    hf_logging.set_verbosity_error()  # no "some weights were not initialized" noise from random test models
    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(resolved.path, local_files_only=True)
        model = AutoModelForSequenceClassification.from_pretrained(resolved.path, local_files_only=True,
                                                                   dtype=torch.float32)
    except (OSError, ValueError) as exc:
        raise SentimentModelError(f"sentiment model {spec.model_id!r} in {resolved.path} cannot be loaded: {exc}") \
            from exc
    model.eval()
    label_columns(model.config.id2label)  # fail on an unknown label set before any scoring
    if spec.int8 is True:
        model = quantize_int8(model)
    if not getattr(tokenizer, "is_fast", False):
        log.warning("sentiment: %s has no fast tokenizer; tokenizing with the slow one", spec.model_id)
    loaded = SentimentModel(resolved, model, tokenizer, model_max_length(spec.max_length, model.config, tokenizer))
    if spec.int8 is None:
        loaded, decision = choose_precision(loaded, records=records)
        loaded.gate = decision
        log.info("sentiment: precision gate for %s (%s) revision %s: %s", spec.model_id, spec.key, resolved.revision,
                 decision.describe())
    log.info("sentiment: loaded %s (%s) revision %s from %s: max_length %d, %d torch threads, %s%s", spec.model_id,
             spec.key, loaded.revision, resolved.path, loaded.max_length, torch.get_num_threads(), loaded.precision,
             "" if spec.int8 is None else " (forced by CRYPTOETL_SENTIMENT_INT8)")
    return loaded


def warn_synthetic(resolved: ResolvedModel) -> None:
    bar = "!" * 78
    log.warning("%s\n!! SYNTHETIC sentiment model %s (%s) at %s:\n!! a tiny RANDOM model, its scores are NOT "
                "meaningful; rows are marked is_synthetic.\n%s", bar, resolved.spec.model_id, resolved.spec.key,
                resolved.path, bar)


class ModelHandle:
    """Lazily resolved, lazily loaded model of one role: the step resolves the revision (cheap) to see
    what needs scoring, and loads weights only when something does."""

    def __init__(self, spec: ModelSpec, threads: int | None = None, records: GateRecords | None = None):
        self.spec = spec
        self.threads = threads
        self.records = records  # the precision gate's kept decisions (auto only)
        self._resolved: ResolvedModel | None = None
        self._model: SentimentModel | None = None

    @property
    def resolved(self) -> ResolvedModel:
        if self._resolved is None:
            self._resolved = resolve(self.spec)
        return self._resolved

    @property
    def revisions(self) -> tuple[str, ...]:
        """The revisions whose stored scores count as this model's, known without loading weights: the
        forced path's one; under auto both the fp32 and the int8 one of the same weights, as the gate
        keeps either within the tolerance of the other (a default flip does not rescore history)."""
        revision = self.resolved.revision
        return (revision, revision + INT8_SUFFIX) if self.spec.int8 is None else (revision,)

    @property
    def revision(self) -> str:
        """The revision new scores are stored under. Under auto the gate decides it: this loads the model."""
        return self.model.revision if self.spec.int8 is None else self.resolved.revision

    @property
    def synthetic(self) -> bool:
        return self.resolved.synthetic

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def model(self) -> SentimentModel:
        if self._model is None:
            self._model = load(self.resolved, self.threads, self.records)
        return self._model
