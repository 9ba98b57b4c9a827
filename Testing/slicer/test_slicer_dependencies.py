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
