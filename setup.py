"""The one thing pyproject.toml cannot say: the repository's top-level folders (simulators/, harness/,
reports/, scenarios/) install as sub-packages of one import package, ``esante``, so that nothing with a
generic name (``simulators``, ``reports``...) lands at the top of site-packages.

Everything else about the distribution is in pyproject.toml.
"""

from setuptools import find_namespace_packages, setup

ROOTS = ("simulators", "harness", "reports", "scenarios")


def _packages(root: str) -> list[str]:
    found = find_namespace_packages(root, exclude=["*__pycache__*"])
    return [f"esante.{root}", *(f"esante.{root}.{name}" for name in found)]


setup(package_dir={f"esante.{root}": root for root in ROOTS},
      packages=[package for root in ROOTS for package in _packages(root)])
