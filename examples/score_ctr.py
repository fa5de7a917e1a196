#!/usr/bin/env python3
"""examples/score_ctr.py — scores rows with a Conveyor CTR model artifact, standard library only.

The artifact is what `conveyor ml status --json` prints under "artifact" (and what
conveyor_ml_models.artifact holds): format "conveyor.ctr-logistic.v1".

    python3 examples/score_ctr.py MODEL.json ROWS.jsonl   # one row per line: {"hook_type", "template_id", "features": {...}}

prints one predicted CTR per row, as Swift's CTRModel.score computes it: z = intercept + Σ weight·x in
the listed order (one_hot: 1 when the row's field equals value, else 0; numeric: (value − mean) / std,
0 when the row lacks it), ctr = 1 / (1 + e^−z).
"""
import json
import math
import sys


def score(model, row):
    if model.get("format") != "conveyor.ctr-logistic.v1":
        raise ValueError("not a conveyor.ctr-logistic.v1 model")
    z = float(model["intercept"])
    features = row.get("features") or {}
    for feature in model["features"]:
        if feature["kind"] == "one_hot":
            x = 1.0 if row.get(feature["field"]) == feature["value"] else 0.0
        elif feature["kind"] == "numeric":
            value = features.get(feature["field"])
            if isinstance(value, bool):
                value = 1.0 if value else 0.0
            x = (float(value) - feature["mean"]) / feature["std"] if isinstance(value, (int, float)) else 0.0
        else:
            raise ValueError(f"unknown feature kind {feature['kind']}")
        z += feature["weight"] * x
    # The same two branches as Swift's sigmoid, for the same rounding.
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def main():
    model = json.load(open(sys.argv[1]))
    for line in open(sys.argv[2]):
        if line.strip():
            print(repr(score(model, json.loads(line))))


if __name__ == "__main__":
    main()
