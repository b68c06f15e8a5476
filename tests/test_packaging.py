"""The project's install files agree with each other."""

import re
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"torch": "pytorch"}  # pip name -> conda name where they differ


def _names(requirements):
    return {re.split(r"[<>=!~ ]", r, maxsplit=1)[0].strip().lower() for r in requirements}


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip_deps = _names(project["dependencies"] + project["optional-dependencies"]["dev"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda_deps = _names(d for d in env["dependencies"] if isinstance(d, str)) - {"python", "pip"}
    assert {CONDA_NAMES.get(n, n) for n in pip_deps} == conda_deps


def _floor(requirements, name):
    """The `>=` version of `name` in a list of requirement strings, as a tuple of ints."""
    spec = next(r for r in requirements if re.split(r"[<>=!~ ]", r, maxsplit=1)[0].strip().lower() == name)
    return tuple(int(n) for n in re.search(r">=\s*([\d.]+)", spec).group(1).split("."))


def test_torch_is_new_enough_to_load_checkpoints_safely():
    """torch.load(weights_only=True) can be bypassed before torch 2.6 (CVE-2025-32434); torchvision 0.21 goes with
    2.6."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    assert _floor(project["dependencies"], "torch") >= (2, 6) and _floor(conda, "pytorch") >= (2, 6)
    assert _floor(project["dependencies"], "torchvision") >= (0, 21) and _floor(conda, "torchvision") >= (0, 21)


def test_conda_takes_pytorch_from_conda_forge_only():
    """The `pytorch` channel's builds stop at 2.5 (and `defaults` has its own): conda-forge, nothing else."""
    channels = yaml.safe_load((ROOT / "environment.yml").read_text())["channels"]
    assert channels == ["conda-forge", "nodefaults"]


def test_no_emnist_data_is_tracked():
    import subprocess

    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    assert not [f for f in files if re.search(r"ubyte|\.npz$|\.npy$|gzip\.zip|\.pth$", f)]
