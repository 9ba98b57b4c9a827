"""The dependency check runs in the worker's interpreter and reports what it found."""
from __future__ import annotations

import sys

import pytest

from U2ADSlicerLib import dependencies
from U2ADSlicerLib.worker import worker_env


def test_probe_reports_torch_and_the_core_packages_of_the_worker_interpreter():
    torch = pytest.importorskip("torch")
    env = dependencies.probe(sys.executable, worker_env())
    assert env.torch_version == torch.__version__
    assert env.missing == () and env.ready
    assert env.cuda == torch.cuda.is_available()
    values = [value for value, _ in env.device_choices()]
    assert values[:2] == ["auto", "cpu"] and (("cuda" in values) == env.cuda)
    assert env.summary().startswith(f"PyTorch {torch.__version__}")


def test_an_interpreter_without_torch_is_reported_not_ready():
    env = dependencies.Environment(torch_version=None, cuda=False, gpus=(), missing=("scikit-image",))
    assert not env.ready
    assert env.summary() == "PyTorch is not installed for the U2AD worker."
    assert env.device_choices() == [("auto", "Auto (CPU: no GPU found)"), ("cpu", "CPU")]


def test_a_broken_interpreter_is_named(tmp_path):
    with pytest.raises((RuntimeError, OSError), match="no_python"):
        dependencies.probe(str(tmp_path / "no_python"))


def test_a_torch_that_fails_to_import_is_reported_broken_not_missing(tmp_path):
    import os

    fake = tmp_path / "torch"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise RuntimeError('CUDA driver initialization failed')\n")
    env = dict(worker_env(), PYTHONPATH=os.pathsep.join([str(tmp_path), worker_env().get("PYTHONPATH", "")]))
    found = dependencies.probe(sys.executable, env)
    assert found.torch_version is None and not found.ready
    assert "RuntimeError: CUDA driver initialization failed" in found.torch_error
    assert "broken" in found.summary() and "Install PyTorch" in found.summary()


def test_an_old_torch_and_an_unused_gpu_are_reported():
    old = dependencies.Environment(torch_version="1.13.1+cu117", cuda=True, gpus=("RTX",))
    assert old.torch_too_old and not old.ready and "too old" in old.summary()
    cpu_build = dependencies.Environment(torch_version="2.4.0+cpu", cuda=False, gpus=(), nvidia_gpu=True)
    assert cpu_build.ready and cpu_build.gpu_unused and "cannot use it" in cpu_build.summary()


def test_installing_packages_never_replaces_slicers_numpy_simpleitk_or_vtk(tmp_path):
    from importlib import metadata

    constraints = dependencies.protected_constraints()
    assert f"numpy=={metadata.version('numpy')}" in constraints.splitlines()
    assert f"SimpleITK=={metadata.version('SimpleITK')}" in constraints.splitlines()
    assert f"torch=={metadata.version('torch')}" in constraints.splitlines()  # monai must not pull another torch
    argv = dependencies.install_command("PythonSlicer", ("scipy", "scikit-image"), tmp_path / "c.txt")
    assert argv[:4] == ["PythonSlicer", "-m", "pip", "install"]
    assert argv[argv.index("--constraint") + 1] == str(tmp_path / "c.txt")
    assert "scipy>=1.10" in argv and "scikit-image>=0.21" in argv  # lower bounds, never unpinned names
    # the cord segmentation's MONAI is probed and installed like the rest, under the same constraints
    assert "monai" in dependencies.CORE_PACKAGES
    assert "monai>=1.3" in dependencies.install_command("PythonSlicer", ("monai",), tmp_path / "c.txt")
