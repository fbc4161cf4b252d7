"""Reduced precision that proves itself at load time: the precision gate.

``CRYPTOETL_SENTIMENT_INT8`` (``SentimentSettings.int8``) chooses how a loaded model runs:

- ``auto`` (the default, ``None``): the gate below decides, once per model load;
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

Cost, once per process that loads weights (none when the interval has nothing to score):
quantizing plus scoring the 60 short texts twice; seconds for a BERT-base on 2 CPUs
(``python -m cryptoetl.bench_sentiment`` reports it). When int8 is chosen the fp32 weights are
released: the int8 copy also needs less memory.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

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

    def describe(self) -> str:
        measured = "agreement not measured"
        if self.mean_abs_score_diff is not None and self.label_agreement is not None:
            agree = round(self.label_agreement * self.n_texts)
            measured = (f"int8 vs fp32 mean |Δscore| {self.mean_abs_score_diff:.4f}, max "
                        f"{self.max_abs_score_diff:.4f}, labels {agree}/{self.n_texts} = {self.label_agreement:.1%}")
        timing = f"fp32 {self.fp32_seconds:.2f}s"
        if self.int8_seconds is not None:
            timing += f", int8 {self.int8_seconds:.2f}s"
        return (f"{self.precision} ({self.reason}: mean |Δscore| ≤ {self.tolerance.max_mean_abs_score_diff}, labels "
                f"≥ {self.tolerance.min_label_agreement:.0%}): {measured} on calibration set "
                f"{self.calibration_version}; {timing}, gate {self.seconds:.2f}s")


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
                     batch_size: int = 32) -> tuple[SentimentModel, GateDecision]:
    """The model to score with, fp32 (``fp32`` itself) or an int8 copy (revision ``+int8``), and the
    decision with its measured agreement. ``fp32`` is a model loaded in fp32, not yet quantized."""
    began = time.perf_counter()
    reference = fp32.score(texts, batch_size)
    fp32_s = time.perf_counter() - began
    try:
        int8 = fp32.with_model(quantize_int8(fp32.model), fp32.revision + INT8_SUFFIX)
        scored = time.perf_counter()
        candidate = int8.score(texts, batch_size)
        int8_s = time.perf_counter() - scored
    except Exception as exc:  # noqa: BLE001 - no int8 engine on this CPU, a layer it cannot quantize...
        log.warning("sentiment: int8 quantization of %s failed, scoring in fp32: %s: %s", fp32.resolved.spec.model_id,
                    type(exc).__name__, exc)
        return fp32, GateDecision("fp32", f"int8 failed: {type(exc).__name__}", len(texts), tolerance,
                                  fp32_seconds=fp32_s, seconds=time.perf_counter() - began)
    mean_diff, max_diff, labels = agreement(reference, candidate)
    accepted = tolerance.holds(mean_diff, labels)
    decision = GateDecision("int8" if accepted else "fp32", "within tolerance" if accepted else "outside tolerance",
                            len(texts), tolerance, mean_diff, max_diff, labels, fp32_s, int8_s,
                            time.perf_counter() - began)
    return (int8 if accepted else fp32), decision
