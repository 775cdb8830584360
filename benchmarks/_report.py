"""Shared by the benchmark scripts: machine description, intervals, and the BENCHMARKS.md they write.

Each script writes its own section to ``benchmarks/results/<name>.md``; BENCHMARKS.md at the
repository root is rebuilt from all sections, so running one benchmark never erases another's
figures.
"""

import os
import platform
import sys
from pathlib import Path

from motion_core.files import replace_file  # the scripts put the repository on sys.path first

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
BOOTSTRAP_RESAMPLES = 10_000


def interval(values, seed: int = 0) -> tuple[float, float]:
    """95 % percentile-bootstrap interval of the mean (``BOOTSTRAP_RESAMPLES`` resamples, fixed seed)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    means = rng.choice(np.asarray(values, float), size=(BOOTSTRAP_RESAMPLES, len(values)), replace=True).mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def mean_and_interval(values, spread: bool = True) -> str:
    """``mean ± sd [95 % interval]`` of ``values`` (NaN left out; without the sd for differences)."""
    import numpy as np

    values = np.asarray(values, float)
    values = values[~np.isnan(values)]
    low, high = interval(values)
    sd = f" ± {values.std(ddof=1):.2f}" if spread and len(values) > 1 else ""
    return f"{values.mean():+.2f}{sd} [{low:+.2f}, {high:+.2f}]"


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return (f"{cpu}, {os.cpu_count()} cores, {device}; Python {platform.python_version()}, "
            f"torch {torch.__version__}")


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def write_section(name: str, title: str, body: str) -> Path:
    """Write ``results/<name>.md`` (title, command, machine, body) and rebuild BENCHMARKS.md."""
    command = "python " + " ".join([str(Path(sys.argv[0]).resolve().relative_to(ROOT)), *sys.argv[1:]])
    section = f"## {title}\n\nCommand: `{command}`  \nMachine: {machine()}\n\n{body.strip()}\n"
    path = RESULTS / f"{name}.md"
    replace_file(path, lambda temporary: temporary.write_text(section))
    sections = [p.read_text() for p in sorted(RESULTS.glob("*.md"))]
    overview = ("# Benchmarks\n\nFigures measured by the scripts in `benchmarks/`; each section names the "
                "command and the machine that produced it.\n\n" + "\n".join(sections))
    replace_file(ROOT / "BENCHMARKS.md", lambda temporary: temporary.write_text(overview))
    return path



def publish(body: str, write: bool, name: str, title: str) -> None:
    """Print ``body``; with ``write`` (a script's ``--write``) also record it as ``results/<name>.md``."""
    print(body)
    if write:
        write_section(name, title, body)
