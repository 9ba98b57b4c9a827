"""What the worker needs (torch and U2ADCore's other packages), checked in the worker's interpreter.

The check runs in a child process, so Slicer's own process never imports torch just to learn
whether it exists. Installing is always the user's decision: `install_torch` and
the panel's package install ask first.
Nothing is downloaded at run time; detection and adaptation only ever use what is installed.
Packages are installed by pip in a background process, with Slicer's numpy, SimpleITK and vtk
held at their versions by a constraints file.
"""
from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from . import processes

# Import names of U2ADCore's run-time dependencies (U2ADCore/pyproject.toml), pip names beside them.
CORE_PACKAGES: dict[str, str] = {
    "numpy": "numpy",
    "SimpleITK": "SimpleITK",
    "scipy": "scipy",
    "skimage": "scikit-image",
    "sklearn": "scikit-learn",
    "matplotlib": "matplotlib",
    "monai": "monai",
}

# The oldest torch U2ADCore runs on (torch.amp, scaled_dot_product_attention, weights_only loads).
MIN_TORCH = (2, 1)
# Packages Slicer itself ships, and the torch the PyTorch extension chose for this machine's GPU:
# never reinstalled or upgraded by the module, whatever pip resolves (monai would pull a newer torch).
PROTECTED = ("numpy", "SimpleITK", "vtk", "torch")

_PROBE = r"""
import importlib.util, json, shutil
found = {"missing": [m for m in MODULES if importlib.util.find_spec(m) is None], "torch": None,
         "torch_error": None, "cuda": False, "gpus": [], "cuda_build": None,
         "nvidia_gpu": shutil.which("nvidia-smi") is not None}
try:
    import torch
    found["torch"] = torch.__version__
    found["cuda_build"] = torch.version.cuda
except BaseException as exc:  # a broken install raises OSError (DLL), RuntimeError, ...: all reported
    found["torch_error"] = f"{type(exc).__name__}: {exc}"
if found["torch"] is not None:
    try:
        found["cuda"] = bool(torch.cuda.is_available())
        found["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if found["cuda"] else []
    except BaseException as exc:
        found["torch_error"] = f"CUDA check failed: {type(exc).__name__}: {exc}"
print(json.dumps(found))
"""


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split("+")[0].split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


@dataclass(frozen=True)
class Environment:
    """What the worker's interpreter can use."""

    torch_version: Optional[str]
    cuda: bool
    gpus: tuple[str, ...]
    missing: tuple[str, ...] = field(default=())  # pip names of missing U2ADCore packages
    torch_error: Optional[str] = None  # torch is there but fails to import or to query CUDA
    cuda_build: Optional[str] = None  # torch.version.cuda: None for a CPU-only build
    nvidia_gpu: bool = False  # an NVIDIA driver is installed (nvidia-smi found)

    @property
    def torch_too_old(self) -> bool:
        return self.torch_version is not None and _version_tuple(self.torch_version) < MIN_TORCH

    @property
    def ready(self) -> bool:
        return self.torch_version is not None and self.torch_error is None and not self.torch_too_old and not self.missing

    @property
    def gpu_unused(self) -> bool:
        """An NVIDIA GPU is present but this torch cannot use it (a CPU-only build)."""
        return self.nvidia_gpu and self.torch_version is not None and not self.cuda

    def device_choices(self) -> list[tuple[str, str]]:
        """(value for --device, label) for the device selector: Auto and CPU, GPU only when found.

        The Auto label says what Auto will use, so the user sees whether a GPU was found.
        """
        if not self.gpus:
            return [("auto", "Auto (CPU: no GPU found)"), ("cpu", "CPU")]
        return [("auto", f"Auto (GPU: {self.gpus[0]})"), ("cpu", "CPU"), ("cuda", f"GPU: {self.gpus[0]}")]

    def summary(self) -> str:
        minimum = ".".join(map(str, MIN_TORCH))
        if self.torch_error is not None:
            return (f"PyTorch is installed but broken ({self.torch_error}). Press 'Install PyTorch' to reinstall it "
                    "through the PyTorch extension.")
        if self.torch_version is None:
            return "PyTorch is not installed for the U2AD worker."
        if self.torch_too_old:
            return f"PyTorch {self.torch_version} is too old: U2AD needs {minimum} or newer. Press 'Install PyTorch' to update it."
        text = f"PyTorch {self.torch_version}, " + (f"GPU: {', '.join(self.gpus)}" if self.gpus else "CPU only")
        if self.gpu_unused:
            text += ("; an NVIDIA GPU is present but this PyTorch build cannot use it "
                     "(reinstall PyTorch with the PyTorch extension to use the GPU)")
        if self.missing:
            text += f"; missing packages: {', '.join(self.missing)}"
        return text


def probe(python: str, env: Optional[dict] = None, timeout_s: float = 120.0) -> Environment:
    """Ask `python` what it has. Raises RuntimeError with the child's message if it cannot run,
    OSError if there is no such interpreter. On timeout the whole process tree is stopped."""
    script = f"MODULES = {sorted(CORE_PACKAGES)!r}\n{_PROBE}"
    proc = subprocess.Popen([python, "-c", script], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, encoding="utf-8", errors="replace", env=env, **processes.popen_options())
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        processes.stop_tree(proc, grace_s=2.0)
        proc.communicate()
        raise RuntimeError(f"{python}: checking the worker's packages took more than {timeout_s:g} s") from None
    if proc.returncode != 0:
        tail = err.strip().splitlines()
        raise RuntimeError(f"{python}: cannot check the worker's packages: {tail[-1] if tail else 'no message'}")
    try:
        data = json.loads(out.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise RuntimeError(f"{python}: the package check printed no answer: {(err or out).strip()[-300:]}") from None
    return Environment(
        torch_version=data["torch"],
        cuda=bool(data.get("cuda", False)),
        gpus=tuple(data.get("gpus", ())),
        missing=tuple(CORE_PACKAGES[m] for m in data["missing"]),
        torch_error=data.get("torch_error"),
        cuda_build=data.get("cuda_build"),
        nvidia_gpu=bool(data.get("nvidia_gpu", False)),
    )


# Lower bounds known to work with U2ADCore (requirements.txt pins what CI runs); pip picks the
# newest release compatible with the protected packages Slicer already has.
PACKAGE_REQUIREMENTS: dict[str, str] = {
    "scipy": "scipy>=1.10",
    "scikit-image": "scikit-image>=0.21",
    "scikit-learn": "scikit-learn>=1.3",
    "matplotlib": "matplotlib>=3.7",
    "monai": "monai>=1.3",  # the cord segmentation's U-Net; pip takes the newest that fits the torch held
    "numpy": "numpy",  # only ever satisfied by the constraint: Slicer's own version
    "SimpleITK": "SimpleITK",
}


def install_torch(confirm: Callable[[str], bool]) -> bool:
    """Install torch (at least MIN_TORCH) through Slicer's PyTorch extension, which picks the
    build for the GPU it finds. Returns True when it installed. Only inside Slicer; asks first.

    This is the extension's own call: it runs in Slicer's process and imports torch there when
    done (the module itself never does); the panel then probes the worker's interpreter again.
    """
    try:
        import PyTorchUtils  # the "PyTorch" extension's module
    except ImportError as exc:
        raise RuntimeError(
            "U2AD needs PyTorch. Install the 'PyTorch' extension from the Extensions Manager, restart Slicer, "
            "then press 'Install PyTorch' again."
        ) from exc
    minimum = ".".join(map(str, MIN_TORCH))
    if not confirm(f"U2AD needs PyTorch {minimum} or newer (about 1-3 GB download). Install it now with the PyTorch extension?"):
        return False
    return PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False, torchVersionRequirement=f">={minimum}") is not None


def protected_constraints() -> str:
    """A pip constraints file holding Slicer's own numpy, SimpleITK and vtk (and the installed torch)
    at their installed versions, so installing U2ADCore's packages can never replace them."""
    from importlib import metadata

    lines = []
    for name in PROTECTED:
        try:
            lines.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return "\n".join(lines) + "\n"


def install_command(python: str, missing: tuple[str, ...], constraints: Path) -> list[str]:
    """pip's argv for U2ADCore's missing packages under the protecting constraints."""
    specs = [PACKAGE_REQUIREMENTS.get(name, name) for name in missing]
    return [python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
            "--upgrade-strategy", "only-if-needed", "--constraint", str(constraints), *specs]


def start_install(python: str, missing: tuple[str, ...], workdir: Path, env: Optional[dict] = None):
    """Start pip in the background (a WorkerProcess in plain-text mode: its lines are progress
    text for the panel, success is exit code 0). Returns the process; the caller polls it."""
    from .worker import WorkerProcess

    constraints = Path(workdir) / "slicer-constraints.txt"
    constraints.write_text(protected_constraints())
    return WorkerProcess(install_command(python, missing, constraints), env=env, plain=True)
