"""The metric library reward terms are built from.

Every metric computes a raw value for one `ScoringItem` (or None when it does not apply: no reference,
no rating, another skill) and maps it to [0, 1] with a documented normalisation, where 1 means "more of
the quantity" (more accurate, longer, slower). A term then applies its direction and weight:
`maximize` contributes `weight * n`, `minimize` contributes `weight * (1 - n)`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sacrebleu

from dreamforge.rewards import items as I
from dreamforge.rewards.matching import caption_mentions, match_boxes, normalise, point_hits
from dreamforge.world.scene import COLOURS

Compute = Callable[[I.ScoringItem, dict[str, Any]], float | None]


@dataclass(frozen=True)
class Param:
    name: str
    kind: str                       # "number" | "bool" | "keywords" | "colours"
    required: bool = False
    default: Any = None
    minimum: float | None = None    # numbers: exclusive lower bound
    maximum: float | None = None    # numbers: inclusive upper bound
    doc: str = ""


@dataclass(frozen=True)
class Metric:
    name: str
    description: str
    raw_range: str
    normalisation: str
    compute: Compute
    normalise: Callable[[float, dict[str, Any]], float] = lambda v, p: v
    params: tuple[Param, ...] = ()

    def value(self, item: I.ScoringItem, params: dict[str, Any]) -> float | None:
        """The normalised value in [0, 1], or None when the metric does not apply to `item`."""
        raw = self.compute(item, params)
        return None if raw is None else min(max(float(self.normalise(raw, params)), 0.0), 1.0)


def _exact_match(item: I.ScoringItem, p: dict[str, Any]) -> float | None:
    ref = I.reference_text(item)
    return None if ref is None else float(normalise(I.output_text(item)) == normalise(ref))


def _tokens(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def _token_f1(item: I.ScoringItem, p: dict[str, Any]) -> float | None:
    ref = I.reference_text(item)
    if ref is None:
        return None
    pred, truth = _tokens(I.output_text(item)), _tokens(ref)
    if not pred or not truth:
        return float(pred == truth)
    common = sum((Counter(pred) & Counter(truth)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(truth)
    return 2 * precision * recall / (precision + recall)


def _caption_truth(item: I.ScoringItem) -> set[tuple[str, str]] | None:
    objects = I.reference_objects(item)
    if objects is not None:
        return {(str(o.get("colour")), str(o.get("shape"))) for o in objects}
    ref = I.reference_text(item)
    return None if ref is None else set(caption_mentions(ref))


def _caption_content(item: I.ScoringItem, p: dict[str, Any]) -> float | None:
    truth = _caption_truth(item)
    if truth is None:
        return None
    said = set(caption_mentions(I.output_text(item)))
    if not p["partial"]:
        return float(said == truth)
    union = said | truth
    return len(said & truth) / len(union) if union else 1.0


def _bleu(item: I.ScoringItem, p: dict[str, Any]) -> float | None:
    ref = I.reference_text(item)
    if ref is None:
        return None
    return float(sacrebleu.sentence_bleu(normalise(I.output_text(item)), [normalise(ref)], smooth_method="exp").score)


def _chrf(item: I.ScoringItem, p: dict[str, Any]) -> float | None:
    ref = I.reference_text(item)
    if ref is None:
        return None
    return float(sacrebleu.sentence_chrf(normalise(I.output_text(item)), [normalise(ref)]).score)


def _detection(item: I.ScoringItem, p: dict[str, Any]) -> tuple[list[float], int, int] | None:
    """IoUs of the true boxes with their matched predictions, number predicted, number true."""
    if item.skill != "detect":
        return None
    truth = I.true_boxes(item)
    if truth is None:
        return None
    pred = I.output_boxes(item)
    return match_boxes(pred, truth), len(pred), len(truth)


def _detection_iou(item: I.ScoringItem, p: dict[str, Any]) -> float | None:
    got = _detection(item, p)
    if got is None:
        return None
    ious, n_pred, n_true = got
    return sum(ious) / n_true if n_true else float(n_pred == 0)


def _detection_f1(item: I.ScoringItem, p: dict[str, Any]) -> float | None:
    got = _detection(item, p)
    if got is None:
        return None
    ious, n_pred, n_true = got
    if n_pred == 0 and n_true == 0:
        return 1.0
    tp = sum(v >= float(p["iou_threshold"]) for v in ious)
    return 2.0 * tp / (n_pred + n_true)


def _false_positive_rate(item: I.ScoringItem, p: dict[str, Any]) -> float | None:
    got = _detection(item, p)
    if got is None:
        return None
    ious, n_pred, _ = got
    tp = sum(v >= p["iou_threshold"] for v in ious)
    return (n_pred - tp) / n_pred if n_pred else 0.0


def _pointing(item: I.ScoringItem) -> tuple[int, int, int] | None:
    """True boxes hit by distinct predicted points, number of points, number of true boxes."""
    if item.skill != "point":
        return None
    truth = I.true_boxes(item)
    if truth is None:
        return None
    pred = I.output_points(item)
    return point_hits(pred, truth), len(pred), len(truth)


def _point_hit_rate(item: I.ScoringItem, p: dict[str, Any]) -> float | None:
    got = _pointing(item)
    if got is None:
        return None
    hits, n_pred, n_true = got
    return hits / n_true if n_true else float(n_pred == 0)


def _point_f1(item: I.ScoringItem, p: dict[str, Any]) -> float | None:
    """Like the hit rate, but a point that hits nothing counts against it: pointing everywhere
    cannot win (the reward to train pointing with)."""
    got = _pointing(item)
    if got is None:
        return None
    hits, n_pred, n_true = got
    return 2.0 * hits / (n_pred + n_true) if n_pred + n_true else 1.0


def _latency(item: I.ScoringItem, p: dict[str, Any]) -> float | None:
    return None if item.latency_ms is None else max(float(item.latency_ms), 0.0)


def _length(item: I.ScoringItem, p: dict[str, Any]) -> float | None:
    return float(len(I.output_text(item).split()))


def _mentioned(words: list[str], text: str) -> float:
    said = set(_tokens(text))
    hits = sum(all(t in said for t in _tokens(w)) for w in words)
    return hits / len(words)


def _keyword_mention(item: I.ScoringItem, p: dict[str, Any]) -> float | None:
    return _mentioned(p["keywords"], I.output_text(item))


def _colour_mention(item: I.ScoringItem, p: dict[str, Any]) -> float | None:
    colours = p["colours"]
    if not colours:
        objects = I.reference_objects(item)
        if objects is None:
            return None
        colours = sorted({str(o.get("colour")) for o in objects})
    return _mentioned(colours, I.output_text(item)) if colours else None


_THUMBS = {"up": 1.0, "down": 0.0, True: 1.0, False: 0.0}  # 1 and 0 hash as True and False


def _human_rating(item: I.ScoringItem, p: dict[str, Any]) -> float | None:
    rating = item.rating or {}
    kind, value = rating.get("kind"), rating.get("value")
    if kind == "thumbs":
        return _THUMBS.get(value if not isinstance(value, str) else value.lower())
    if kind == "score" and isinstance(value, (int, float)) and not isinstance(value, bool) and 1 <= value <= 5:
        return (float(value) - 1.0) / 4.0
    if kind == "flag":
        return 0.0
    return None


def _pairwise(item: I.ScoringItem, p: dict[str, Any]) -> float | None:
    return None if item.preferred is None else float(item.preferred)


_IOU = Param("iou_threshold", "number", default=0.5, minimum=0.0, maximum=1.0,
             doc="IoU at or above which a predicted box matches a true one")

METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("exact_match", "output equals the reference answer (or correction) after normalising case, "
           "spaces and a final full stop", "{0, 1}", "as is", _exact_match),
    Metric("token_f1", "token-level F1 between output and reference answer (or correction)", "[0, 1]",
           "as is", _token_f1),
    Metric("caption_content_accuracy", "the (colour, shape) pairs the caption mentions against the ground-truth "
           "objects (or those a correction mentions); partial=true gives their Jaccard overlap, partial=false "
           "1 only when the sets are equal (the model evaluation's caption_content)", "[0, 1]", "as is",
           _caption_content, params=(Param("partial", "bool", default=True, doc="Jaccard overlap instead of 0/1"),)),
    Metric("bleu", "sentence BLEU (sacrebleu, exponential smoothing) against the reference text", "[0, 100]",
           "raw / 100", _bleu, lambda v, p: v / 100.0),
    Metric("chrf", "sentence chrF (sacrebleu), a character n-gram overlap robust on short texts", "[0, 100]",
           "raw / 100", _chrf, lambda v, p: v / 100.0),
    Metric("detection_iou", "detect: mean IoU of the true boxes with their one-to-one matched predictions "
           "(a missed box counts 0; nothing to find and nothing found is 1)", "[0, 1]", "as is", _detection_iou),
    Metric("detection_f1", "detect: F1 of predicted boxes matched at IoU >= iou_threshold", "[0, 1]", "as is",
           _detection_f1, params=(_IOU,)),
    Metric("false_positive_rate", "detect: share of predicted boxes that match no true box (0 when none "
           "predicted)", "[0, 1]", "as is", _false_positive_rate, params=(_IOU,)),
    Metric("point_hit_rate", "point: share of true objects hit by a distinct predicted point (nothing to "
           "find and nothing pointed at is 1)", "[0, 1]", "as is", _point_hit_rate),
    Metric("point_f1", "point: F1 of distinct predicted points inside true boxes (hits against both the "
           "points given and the objects there are; nothing to find and nothing pointed at is 1)", "[0, 1]",
           "as is", _point_f1),
    Metric("latency_ms", "the served latency in milliseconds", "[0, inf)", "min(raw / max_ms, 1)", _latency,
           lambda v, p: v / p["max_ms"],
           params=(Param("max_ms", "number", default=1000.0, minimum=0.0, doc="latency that normalises to 1"),)),
    Metric("output_length", "words in the output text", "[0, inf)", "min(raw / max_words, 1)", _length,
           lambda v, p: v / p["max_words"],
           params=(Param("max_words", "number", default=50.0, minimum=0.0, doc="length that normalises to 1"),)),
    Metric("keyword_mention", "share of the keywords the output mentions (whole words, any case)", "[0, 1]",
           "as is", _keyword_mention, params=(Param("keywords", "keywords", required=True,
                                                    doc="non-empty list of words or phrases"),)),
    Metric("colour_mention", "share of the colours (params.colours, else those of the ground-truth objects) "
           "the output mentions", "[0, 1]", "as is", _colour_mention,
           params=(Param("colours", "colours", default=[], doc=f"subset of {', '.join(COLOURS)}"),)),
    Metric("human_rating", "a rater's rating: thumbs up 1 / down 0, a 1-5 score, a flag 0", "thumbs {0, 1}; "
           "score 1..5", "thumbs as is; score (s - 1) / 4; flag 0", _human_rating),
    Metric("pairwise_preference", "1 for the output a rater preferred in a pairwise comparison, 0 for the "
           "other", "{0, 1}", "as is", _pairwise),
)}
