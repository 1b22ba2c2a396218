"""fgad: self-supervised industrial anomaly detection.

Foreground-enhanced anomaly synthesis (Otsu foreground x Perlin mask) and a reconstructive
autoencoder with efficient channel attention, after Zhao et al. 2023, built on DRAEM.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
