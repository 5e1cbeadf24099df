"""The package's version, written here and nowhere else: pyproject.toml reads this line when the
package is built (``[tool.setuptools.dynamic]``), and ``lamaml --version``, metrics.json and the
results store read it at run time, installed or not. Imports nothing of lamaml, so any module may use it."""
__version__ = "0.1.0"
