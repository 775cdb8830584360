"""Shared by the benchmark scripts: machine description and the BENCHMARKS.md they write.

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
