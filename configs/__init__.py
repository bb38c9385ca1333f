"""The configs shipped with interp (package data, so an installed copy finds them too):
training presets in ``train/``, the probe feature catalogue ``features.yaml``."""

from importlib.resources import files
from pathlib import Path

CONFIG_DIR = Path(str(files(__name__)))
