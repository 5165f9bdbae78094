"""The scenario runner: drives a candidate system through a campaign and judges what it observes."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("esante-conformance")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+source"
