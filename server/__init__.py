__version__ = "0.1.0"

# `matches` in rules runs on RE2 (linear time) wherever Nudge runs: the web, workers, the CLI.
# Installed here, on import, because every entry point imports this package first.
from .regex import install as _install_regex_engine

_install_regex_engine()
