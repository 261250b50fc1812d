"""Check that explanations on an accelerator match the CPU's (patterns equal, scores close).

    python benchmarks/device_check.py --device cuda
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from gpr import make_batch, make_model  # noqa: E402

from influence_patterns.attribution.qoi import get_qoi  # noqa: E402
from influence_patterns.attribution.quadrature import make_quadrature  # noqa: E402
from influence_patterns.graph.architectures import adapter_for  # noqa: E402
from influence_patterns.search.fast import gpr_fast  # noqa: E402  (the default scorer)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    qoi, quad = get_qoi("agreement"), make_quadrature(args.steps)
    out = {}
    for device in ("cpu", args.device):
        model = make_model().to(device)
        adapter = adapter_for(model)
        out[device] = [gpr_fast(adapter, make_batch(model, n, seed=n, device=device), quad, qoi)[0] for n in (12, 30)]
    same, worst = 0, 0.0
    total = 0
    for cpu_row, dev_row in zip(out["cpu"], out[args.device]):
        for c, d in zip(cpu_row, dev_row):
            total += 1
            same += (c.positions, c.heads) == (d.positions, d.heads)
            for a, b in [(c.g, d.g), (c.influence_token, d.influence_token), (c.influence_head, d.influence_head)]:
                worst = max(worst, abs(a - b) / (abs(a) + 1e-3))
    print(f"{args.device} vs cpu: {same}/{total} patterns identical; worst relative score difference {worst:.2e}")


if __name__ == "__main__":
    main()
