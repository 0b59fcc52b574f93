"""What changed between two versions, as a flat list of `FieldChange`s.

JSON documents (training config, reward function) are flattened to dotted keys
(`training_config.optimizer.lr`); lists and scalars are leaves. Values are rendered
as JSON (`"adamw"`, `0.0001`, `[1, 2]`), and an absent key is the empty string, so
"missing" and "empty string" stay distinguishable.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from services.registry.records import FieldChange, Version


def flatten(doc: Mapping[str, Any], prefix: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in doc.items():
        path = f"{prefix}.{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, path))
        else:
            out[path] = json.dumps(value, sort_keys=True)
    return out


def _json(value: str) -> dict[str, Any]:
    doc = json.loads(value) if value.strip() else {}
    return doc if isinstance(doc, dict) else {}


def _changes(before: Mapping[str, str], after: Mapping[str, str]) -> list[FieldChange]:
    return [FieldChange(key, before.get(key, ""), after.get(key, ""))
            for key in sorted(before.keys() | after.keys()) if before.get(key, "") != after.get(key, "")]


def diff_versions(a: Version, b: Version) -> list[FieldChange]:
    """Changes from `a` to `b`: parent, artifact, training_config.*, reward_function.*,
    eval_metrics.*, notes — in that order."""
    changes = _changes(
        {"parent_version": str(a.parent_version), "artifact_sha256": a.artifact_sha256,
         "artifact_bytes": str(a.artifact_bytes)},
        {"parent_version": str(b.parent_version), "artifact_sha256": b.artifact_sha256,
         "artifact_bytes": str(b.artifact_bytes)},
    )
    changes.sort(key=lambda c: ["parent_version", "artifact_sha256", "artifact_bytes"].index(c.field))
    changes += _changes(flatten(_json(a.training_config_json), "training_config"),
                        flatten(_json(b.training_config_json), "training_config"))
    changes += _changes(flatten(_json(a.reward_function_json), "reward_function"),
                        flatten(_json(b.reward_function_json), "reward_function"))
    changes += _changes({f"eval_metrics.{k}": json.dumps(v) for k, v in a.eval_metrics.items()},
                        {f"eval_metrics.{k}": json.dumps(v) for k, v in b.eval_metrics.items()})
    changes += _changes({"notes": a.notes}, {"notes": b.notes})
    return changes
