"""tanhui (碳汇): carbon stock and carbon sink from land-cover and NDVI rasters."""
from __future__ import annotations

__version__ = "0.1.0"
