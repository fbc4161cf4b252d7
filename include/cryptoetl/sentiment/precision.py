"""Reduced precision that proves itself at load time: the precision gate.

``CRYPTOETL_SENTIMENT_INT8`` (``SentimentSettings.int8``) chooses how a loaded model runs:

- ``auto`` (the default, ``None``): the gate below decides when a model loads (or reuses a kept decision);
- ``1`` (``True``): dynamic int8 without the gate; ``0`` (``False``): fp32, as loaded.

The gate scores the fixed calibration set (``sentiment/calibration.py``: 60 headlines written for
this project, versioned) with the fp32 model as loaded and with a dynamically int8-quantized copy
(``quantize_int8``), and uses the copy only if it agrees with fp32 within ``TOLERANCE``:

- mean |Δscore| ≤ 0.01 over the texts, score = p_positive - p_negative (the stored ``score``, in
  [-1, 1]);
- the labels (argmax, the stored ``label``) equal on ≥ 98% of the texts (60 texts: one may differ).

Otherwise, or when quantizing fails (a CPU without int8 kernels), fp32 stays. The decision is
deterministic for a given model, calibration set and torch build (the image pins torch). It is
logged with the measured agreement, and recorded in the revision stored with every score:
``<rev>+int8`` when int8 scored it, ``<rev>`` when fp32 did, so the two are never mixed silently.

Cost: quantizing plus scoring the 60 short texts twice, tens of seconds for both BERT-base models on
2 CPUs (``python -m cryptoetl.bench_sentiment`` reports it). An hourly pod scores a few dozen
articles, so paying that in every pod would cost more than int8 saves. The step therefore keeps each
decision in the warehouse (``sentiment_precision_decisions``) under a ``GateKey``: the model id and
revision (the weights), the calibration set with the truncation length and batch size, the tolerance,
the torch, transformers and tokenizers versions, and the CPU's kernels. A later load with the same key
reuses the decision, measured figures included, and only quantizes. Anything new (other weights, an
upgraded library, another CPU family) runs the gate again. Deleting the rows forces that too. A model
loaded without a store (``ModelHandle`` without ``records``, as the bench's own handles are) measures
at every load. When int8 is chosen the fp32 weights are released: the int8 copy also needs
less memory.
"""

from __future__ import annotations

import hashlib
import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from cryptoetl.sentiment.calibration import CALIBRATION_VERSION, HEADLINES

if TYPE_CHECKING:
    from cryptoetl.sentiment.model import SentimentModel

log = logging.getLogger(__name__)

INT8_SUFFIX = "+int8"  # appended to the revision of scores made by the int8 path


@dataclass(frozen=True)
class Tolerance:
    """How close the int8 path must stay to fp32 on the calibration set to be used."""

    max_mean_abs_score_diff: float = 0.01
    min_label_agreement: float = 0.98

    def holds(self, mean_abs_score_diff: float, label_agreement: float) -> bool:
        return (mean_abs_score_diff <= self.max_mean_abs_score_diff
                and label_agreement >= self.min_label_agreement)

    def spec(self) -> str:
        return f"score<={self.max_mean_abs_score_diff!r},labels>={self.min_label_agreement!r}"


TOLERANCE = Tolerance()


@dataclass(frozen=True)
class GateDecision:
    """What the gate chose, and what it measured (``None``: not measured, quantizing failed)."""

    precision: str  # "int8" | "fp32"
    reason: str
    n_texts: int
    tolerance: Tolerance
    mean_abs_score_diff: float | None = None
    max_abs_score_diff: float | None = None
    label_agreement: float | None = None
    fp32_seconds: float = 0.0  # scoring the calibration set in fp32
    int8_seconds: float | None = None  # ... and with the int8 copy
    seconds: float = 0.0  # the gate's whole one-off cost (both scorings and quantizing)
    calibration_version: str = CALIBRATION_VERSION
    recorded_at: datetime | None = None  # set when the decision was read back, not measured by this load

    def record(self) -> dict:
        """The measured fields, as ``sentiment_precision_decisions`` stores them."""
        return {"precision": self.precision, "reason": self.reason, "n_texts": self.n_texts,
                "mean_abs_score_diff": self.mean_abs_score_diff, "max_abs_score_diff": self.max_abs_score_diff,
                "label_agreement": self.label_agreement, "fp32_seconds": self.fp32_seconds,
                "int8_seconds": self.int8_seconds, "gate_seconds": self.seconds}

    def describe(self) -> str:
        measured = "agreement not measured"
        if self.mean_abs_score_diff is not None and self.label_agreement is not None:
            agree = round(self.label_agreement * self.n_texts)
            measured = (f"int8 vs fp32 mean |Δscore| {self.mean_abs_score_diff:.4f}, max "
                        f"{self.max_abs_score_diff:.4f}, labels {agree}/{self.n_texts} = {self.label_agreement:.1%}")
        timing = f"fp32 {self.fp32_seconds:.2f}s"
        if self.int8_seconds is not None:
            timing += f", int8 {self.int8_seconds:.2f}s"
        if self.recorded_at is not None:
            timing = f"recorded {self.recorded_at:%Y-%m-%d %H:%M} UTC ({timing}); {self.seconds:.2f}s now"
        else:
            timing += f", gate {self.seconds:.2f}s"
        return (f"{self.precision} ({self.reason}: mean |Δscore| ≤ {self.tolerance.max_mean_abs_score_diff}, labels "
                f"≥ {self.tolerance.min_label_agreement:.0%}): {measured} on calibration set "
                f"{self.calibration_version}; {timing}")


@dataclass(frozen=True)
class GateKey:
    """Everything a gate decision depends on: the same key scores the calibration set identically both
    ways, so it reaches the same decision (the columns of ``sentiment_precision_decisions``' key)."""

    model_id: str
    model_revision: str  # the fp32 revision: a snapshot commit or a content hash of the files
    calibration: str  # the set's version (or digest), the truncation length and the batch size
    tolerance: str
    runtime: str  # torch, transformers and tokenizers versions: the kernels, the forward code, the ids
    cpu: str  # torch's CPU capability (fp32 kernels), quantized engine and int8 dot-product instructions

    @classmethod
    def of(cls, fp32: SentimentModel, tolerance: Tolerance, texts: Sequence[str], batch_size: int) -> GateKey:
        import tokenizers
        import torch
        import transformers

        version = CALIBRATION_VERSION if tuple(texts) == HEADLINES else \
            "sha256:" + hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
        runtime = f"torch {torch.__version__}, transformers {transformers.__version__}, tokenizers " \
                  f"{tokenizers.__version__}"
        cpu = "/".join([str(torch.backends.cpu.get_cpu_capability()), str(torch.backends.quantized.engine),
                        *int8_dot_product_flags()])
        return cls(fp32.resolved.spec.model_id, fp32.revision, f"{version}/len{fp32.max_length}/b{batch_size}",
                   tolerance.spec(), runtime, cpu)

    def record(self) -> dict:
        return asdict(self)


def int8_dot_product_flags() -> list[str]:
    """The CPU's int8 dot-product extensions. Without them (plain AVX2) an int8 matmul is not much faster
    than an fp32 one: 1.7x on an AVX2-only AMD EPYC (fbgemm vs MKL, 1500x768 @ 768x3072, one thread),
    where the default path reached ~1.5x the fp32 forward; with AVX-512 VNNI it reached 4-4.7x."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:  # pragma: no cover - not Linux
        return []
    return sorted(flags & {"avx512_vnni", "avx_vnni", "amx_int8", "avx_vnni_int8"})


class GateRecords(Protocol):
    """Where decisions are kept between loads (the step's: the warehouse). ``get`` returns a stored
    ``GateDecision.record()`` plus ``decided_at``, or None; ``put`` keeps the first decision of a key."""

    def get(self, key: GateKey) -> dict | None: ...

    def put(self, key: GateKey, decision: GateDecision) -> None: ...


def agreement(reference: np.ndarray, candidate: np.ndarray) -> tuple[float, float, float]:
    """(mean |Δscore|, max |Δscore|, label agreement) of two (n, 3) arrays of (positive, negative,
    neutral) probabilities of the same texts."""
    diff = np.abs((candidate[:, 0] - candidate[:, 1]) - (reference[:, 0] - reference[:, 1]))
    labels = np.argmax(candidate, axis=1) == np.argmax(reference, axis=1)
    return float(diff.mean()), float(diff.max()), float(labels.mean())


def quantize_int8(model):
    """A copy of ``model`` with dynamic int8 quantization of every nn.Linear (weights int8 per tensor,
    activations quantized per batch). torch 2.13 still ships ``torch.ao.quantization.quantize_dynamic``
    but marks it deprecated in favour of torchao; it works on CPU (x86/fbgemm kernels), so it is used
    with its warnings silenced."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def choose_precision(fp32: SentimentModel, tolerance: Tolerance = TOLERANCE, texts: Sequence[str] = HEADLINES,
                     batch_size: int = 32, records: GateRecords | None = None) -> tuple[SentimentModel, GateDecision]:
    """The model to score with, fp32 (``fp32`` itself) or an int8 copy (revision ``+int8``), and the
    decision with its measured agreement. ``fp32`` is a model loaded in fp32, not yet quantized.
    ``records``: a decision kept there for this ``GateKey`` is reused; a new measured one is kept."""
    key = GateKey.of(fp32, tolerance, texts, batch_size) if records is not None else None
    if records is not None and (kept := records.get(key)) is not None:
        return _reuse(fp32, tolerance, kept)
    chosen, decision = _measure(fp32, tolerance, texts, batch_size)
    if records is not None and decision.label_agreement is not None:  # a failed quantization is tried again
        records.put(key, decision)
    return chosen, decision


def _reuse(fp32: SentimentModel, tolerance: Tolerance, kept: dict) -> tuple[SentimentModel, GateDecision]:
    """A kept decision applied to this load: int8 quantizes (nothing is scored), fp32 keeps ``fp32``."""
    began = time.perf_counter()
    figures = {name: kept[name] for name in ("n_texts", "mean_abs_score_diff", "max_abs_score_diff",
                                             "label_agreement", "fp32_seconds", "int8_seconds")}
    chosen, precision_, reason = fp32, kept["precision"], kept["reason"]
    if precision_ == "int8":
        try:
            chosen = fp32.with_model(quantize_int8(fp32.model), fp32.revision + INT8_SUFFIX)
        except Exception as exc:  # noqa: BLE001 - as in _measure
            precision_, reason = "fp32", _int8_failed(fp32, exc)
    return chosen, GateDecision(precision_, reason, tolerance=tolerance, seconds=time.perf_counter() - began,
                                recorded_at=kept["decided_at"], **figures)


def _int8_failed(fp32: SentimentModel, exc: Exception) -> str:
    """Log that the int8 path failed (fp32 scores instead); the decision's reason."""
    log.warning("sentiment: int8 quantization of %s failed, scoring in fp32: %s: %s", fp32.resolved.spec.model_id,
                type(exc).__name__, exc)
    return f"int8 failed: {type(exc).__name__}"


def _measure(fp32: SentimentModel, tolerance: Tolerance, texts: Sequence[str],
             batch_size: int) -> tuple[SentimentModel, GateDecision]:
    """The gate itself: both scorings of ``texts`` and the comparison."""
    began = time.perf_counter()
    reference = fp32.score(texts, batch_size)
    fp32_s = time.perf_counter() - began
    try:
        int8 = fp32.with_model(quantize_int8(fp32.model), fp32.revision + INT8_SUFFIX)
        scored = time.perf_counter()
        candidate = int8.score(texts, batch_size)
        int8_s = time.perf_counter() - scored
    except Exception as exc:  # noqa: BLE001 - no int8 engine on this CPU, a layer it cannot quantize...
        return fp32, GateDecision("fp32", _int8_failed(fp32, exc), len(texts), tolerance,
                                  fp32_seconds=fp32_s, seconds=time.perf_counter() - began)
    mean_diff, max_diff, labels = agreement(reference, candidate)
    accepted = tolerance.holds(mean_diff, labels)
    decision = GateDecision("int8" if accepted else "fp32", "within tolerance" if accepted else "outside tolerance",
                            len(texts), tolerance, mean_diff, max_diff, labels, fp32_s, int8_s,
                            time.perf_counter() - began)
    return (int8 if accepted else fp32), decision
