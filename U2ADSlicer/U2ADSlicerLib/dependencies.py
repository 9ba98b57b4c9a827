"""What the worker needs (torch and U2ADCore's other packages), checked in the worker's interpreter.

The check runs in a child process, so Slicer's own process never imports torch just to learn
whether it exists. Installing is always the user's decision: `install_torch` and
`install_packages` take a `confirm(question) -> bool` callback and do nothing without a yes.
Nothing is downloaded at run time; detection and adaptation only ever use what is installed.
"""
from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from typing import Callable, Optional

# Import names of U2ADCore's run-time dependencies (U2ADCore/pyproject.toml), pip names beside them.
CORE_PACKAGES: dict[str, str] = {
    "numpy": "numpy",
    "SimpleITK": "SimpleITK",
    "scipy": "scipy",
    "skimage": "scikit-image",
    "sklearn": "scikit-learn",
    "matplotlib": "matplotlib",
}

_PROBE = r"""
import importlib.util, json
found = {"missing": [m for m in MODULES if importlib.util.find_spec(m) is None]}
try:
    import torch
    found["torch"] = torch.__version__
    found["cuda"] = bool(torch.cuda.is_available())
    found["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if found["cuda"] else []
except ImportError:
    found["torch"] = None
print(json.dumps(found))
"""


@dataclass(frozen=True)
class Environment:
    """What the worker's interpreter can use."""

    torch_version: Optional[str]
    cuda: bool
    gpus: tuple[str, ...]
    missing: tuple[str, ...] = field(default=())  # pip names of missing U2ADCore packages

    @property
    def ready(self) -> bool:
        return self.torch_version is not None and not self.missing

    def device_choices(self) -> list[tuple[str, str]]:
        """(value for --device, label) for the device selector: Auto and CPU, GPU only when found.

        The Auto label says what Auto will use, so the user sees whether a GPU was found.
        """
        if not self.gpus:
            return [("auto", "Auto (CPU: no GPU found)"), ("cpu", "CPU")]
        return [("auto", f"Auto (GPU: {self.gpus[0]})"), ("cpu", "CPU"), ("cuda", f"GPU: {self.gpus[0]}")]

    def summary(self) -> str:
        if self.torch_version is None:
            return "PyTorch is not installed for the U2AD worker."
        text = f"PyTorch {self.torch_version}, " + (f"GPU: {', '.join(self.gpus)}" if self.gpus else "CPU only")
        if self.missing:
            text += f"; missing packages: {', '.join(self.missing)}"
        return text


def probe(python: str, env: Optional[dict] = None, timeout_s: float = 120.0) -> Environment:
    """Ask `python` what it has. Raises RuntimeError with the child's message if it cannot run,
    OSError if there is no such interpreter."""
    script = f"MODULES = {sorted(CORE_PACKAGES)!r}\n{_PROBE}"
    try:
        proc = subprocess.run([python, "-c", script], capture_output=True, text=True, env=env, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{python}: checking the worker's packages took more than {timeout_s:g} s") from None
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()
        raise RuntimeError(f"{python}: cannot check the worker's packages: {tail[-1] if tail else 'no message'}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    return Environment(
        torch_version=data["torch"],
        cuda=bool(data.get("cuda", False)),
        gpus=tuple(data.get("gpus", ())),
        missing=tuple(CORE_PACKAGES[m] for m in data["missing"]),
    )


def install_torch(confirm: Callable[[str], bool]) -> bool:
    """Install torch through Slicer's PyTorch extension (it picks the right CUDA build).

    Returns True when torch was installed. Only inside the Slicer application; asks first.
    """
    try:
        import PyTorchUtils  # the "PyTorch" extension's module
    except ImportError as exc:
        raise RuntimeError(
            "U2AD needs PyTorch. Install the 'PyTorch' extension from the Extensions Manager, restart Slicer, "
            "then press 'Install PyTorch' again."
        ) from exc
    if not confirm("U2AD needs PyTorch (about 1-3 GB download). Install it now with the PyTorch extension?"):
        return False
    return PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False) is not None


def install_packages(missing: tuple[str, ...], confirm: Callable[[str], bool]) -> bool:
    """pip-install U2ADCore's missing packages into Slicer's Python, after asking."""
    if not missing:
        return True
    if not confirm(f"U2AD needs these Python packages: {', '.join(missing)}. Install them now?"):
        return False
    import slicer

    slicer.util.pip_install(list(missing))
    return True
