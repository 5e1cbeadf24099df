"""The installed package's version, from its metadata. Imports nothing of lamaml, so any module may use it."""
from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("lamaml")
except PackageNotFoundError:   # a source tree on sys.path, not installed
    __version__ = "0+unknown"
