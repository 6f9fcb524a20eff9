"""Throughput of ML-model evaluation: batched onnxruntime calls against per-event calls.

Runs the ATLAS-HIGP-2024-32 nonresDNN (even fold, 10 inputs) through the same single-threaded
onnxruntime InferenceSession that a selection uses, on the same input rows, once in batches of
``recastflow.select.mlmodels.BATCH_ROWS`` (via ``ModelDef.evaluate``, scaling included) and once with one
``session.run`` call per event, and prints events/s/core of both and their ratio. Both results
are compared (they must agree to 1e-6). The rows are the validation vectors of the model, tiled.

    OMP_NUM_THREADS=1 python benchmarks/bench_onnx.py [--events 200000]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ["OMP_NUM_THREADS"] = "1"

import numpy as np  # noqa: E402

from recastflow.select.mlmodels import BATCH_ROWS, session_for  # noqa: E402
from recastflow.select.selection import load_selection  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SELECTION = REPO / "config/models/ATLAS-HIGP-2024-32/selection.yaml"


def best_of(repeats: int, fn) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="rows for the batched run")
    parser.add_argument("--per-event", type=int, default=20_000, help="rows for the per-event run")
    parser.add_argument("--model", default="nonres_even")
    args = parser.parse_args()
    model = next(m for m in load_selection(SELECTION).models if m.name == args.model)
    rows = np.asarray(json.loads(model.vectors.read_text())["inputs"])
    x = np.tile(rows, (args.events // len(rows) + 1, 1))[:args.events]
    session = session_for(model)
    tin = model.inputs[0]
    scaled = ((x - tin.offset) / tin.scale).astype(np.float32)
    columns = list(x.T)

    model.evaluate([c[:1000] for c in columns])  # warm-up
    t_batch = best_of(3, lambda: model.evaluate(columns))

    n1 = min(args.per_event, args.events)

    def per_event() -> np.ndarray:
        out = np.empty(n1)
        for i in range(n1):
            out[i] = session.run([model.output], {tin.tensor: scaled[i:i + 1]})[0][0, 0]
        return out
    t_single = best_of(1, per_event)
    agree = np.max(np.abs(per_event() - model.evaluate([c[:n1] for c in columns])))

    batch_rate, single_rate = args.events / t_batch, n1 / t_single
    print(f"model {model.name} ({model.path.name}), onnxruntime single-threaded, OMP_NUM_THREADS=1")
    print(f"batched ({args.events} events, batches of up to {BATCH_ROWS}, "
          f"scaling included): {batch_rate:,.0f} events/s/core")
    print(f"per-event calls ({n1} events, same session):                   {single_rate:,.0f} events/s/core")
    print(f"largest |score difference|: {agree:.2g}")
    print(f"ratio batched / per-event: {batch_rate / single_rate:.1f}x (target >= 20x)")


if __name__ == "__main__":
    main()
