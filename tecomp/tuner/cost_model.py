"""The XGBoost cost model: scores feature vectors so the tuner measures promising configs first.

Owns ``XGBoostCostModel``: training on (feature vector, throughput) pairs,
prediction, transfer learning from other tasks' pairs (``fit_log``), and
saving / loading a trained model together with the feature version and
length it was trained on. This is the only module that imports xgboost, and
it does so inside functions, so ``import tecomp.tuner`` never needs it.

Must not: compute features (``features.py`` does), pick configs (the tuners
do), or answer for features of another layout: a feature vector of the
wrong length, or a model trained on another ``FEATURE_VERSION``, is a
``CostModelError``, never a silent garbage score.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np

from ..error import TecompError
from .features import FEATURE_VERSION

_OBJECTIVES = {"rank": "rank:pairwise", "reg": "reg:squarederror"}
_NUM_BOOST_ROUND = 100
_SAVE_FORMAT = "tecomp-xgb-cost-model"


class CostModelError(TecompError):
    """A cost model used with data it cannot score (wrong feature layout, untrained, bad loss)."""


class XGBoostCostModel:
    """Gradient-boosted trees over feature vectors; higher scores mean faster configs.

    ``loss_type="rank"`` learns an order (``rank:pairwise``), ``"reg"`` the
    normalized throughput itself (``reg:squarederror``). Throughputs are
    divided by their maximum before training; failed trials carry 0.
    ``feature_version`` is the layout of the vectors this model will be given.
    ``num_threads``: xgboost's threads (None: one).
    """

    def __init__(self, task: Any = None, loss_type: str = "rank", num_threads: Optional[int] = None,
                 feature_version: int = FEATURE_VERSION, seed: Optional[int] = None):
        if loss_type not in _OBJECTIVES:
            raise CostModelError(f"unknown loss_type {loss_type!r}; expected one of {sorted(_OBJECTIVES)}")
        self.task = task
        self.loss_type = loss_type
        self.num_threads = num_threads
        self.feature_version = feature_version
        self.seed = seed
        self._booster: Any = None
        self._trained_version: Optional[int] = None
        self._n_features: Optional[int] = None

    @property
    def trained(self) -> bool:
        return self._booster is not None

    def fit(self, xs: np.ndarray, ys: np.ndarray) -> None:
        """Train from scratch on feature rows ``xs`` and throughputs ``ys`` (replaces any model)."""
        xs, ys = _as_training_data(xs, ys)
        self._booster = self._train(xs, ys)
        self._trained_version = self.feature_version
        self._n_features = xs.shape[1]

    def fit_log(self, pairs: Iterable[tuple], feature_version: int = FEATURE_VERSION) -> int:
        """Train on (features, throughput) pairs from other tasks' records; returns how many.

        The pairs must carry this model's feature version. The model so
        trained scores configs until the tuner's own ``fit`` replaces it.
        """
        if feature_version != self.feature_version:
            raise CostModelError(f"fit_log: records carry features of version {feature_version}, "
                                 f"this model uses version {self.feature_version}; recompute them")
        pairs = list(pairs)
        if not pairs:
            return 0
        self.fit(np.stack([np.asarray(f, dtype=np.float32) for f, _ in pairs]),
                 np.array([y for _, y in pairs], dtype=np.float64))
        return len(pairs)

    def predict(self, xs: np.ndarray) -> np.ndarray:
        """Scores of feature rows ``xs`` (comparable with each other, not GFLOP/s)."""
        if not self.trained:
            raise CostModelError("predict: the cost model has not been trained (call fit or fit_log)")
        if self._trained_version != self.feature_version:
            raise CostModelError(f"predict: the model was trained on features of version "
                                 f"{self._trained_version}, but is given version {self.feature_version}")
        xs = np.asarray(xs, dtype=np.float32)
        if xs.ndim != 2 or xs.shape[1] != self._n_features:
            raise CostModelError(f"predict: expected rows of {self._n_features} features "
                                 f"(version {self._trained_version}), got an array of shape {xs.shape}")
        if xs.shape[0] == 0:
            return np.zeros(0)
        return np.asarray(self._booster.inplace_predict(xs), dtype=np.float64)

    def save(self, path: str | Path) -> None:
        """Write the trained model with its feature version and length (one JSON file)."""
        if not self.trained:
            raise CostModelError("save: the cost model has not been trained")
        raw = bytes(self._booster.save_raw("ubj"))
        doc = {"format": _SAVE_FORMAT, "loss_type": self.loss_type,
               "feature_version": self._trained_version, "n_features": self._n_features,
               "booster": base64.b64encode(raw).decode("ascii")}
        Path(path).write_text(json.dumps(doc))

    @classmethod
    def load(cls, path: str | Path, task: Any = None, num_threads: Optional[int] = None,
             feature_version: int = FEATURE_VERSION) -> "XGBoostCostModel":
        """A model saved by ``save``; it refuses to predict unless ``feature_version`` matches its own."""
        import xgboost as xgb
        try:
            doc = json.loads(Path(path).read_text())
            if doc.get("format") != _SAVE_FORMAT:
                raise ValueError("not a tecomp cost model")
            raw = bytearray(base64.b64decode(doc["booster"]))
            model = cls(task, doc["loss_type"], num_threads, feature_version)
            model._booster = xgb.Booster(model_file=raw)
            model._trained_version = int(doc["feature_version"])
            model._n_features = int(doc["n_features"])
        except (OSError, ValueError, KeyError, TypeError, xgb.core.XGBoostError) as err:
            raise CostModelError(f"cannot load a cost model from {path}: {err}") from err
        return model

    def _params(self) -> dict:
        params = {"objective": _OBJECTIVES[self.loss_type], "max_depth": 6, "eta": 0.3,
                  "gamma": 1e-4, "min_child_weight": 1, "subsample": 1.0, "lambda": 1.0,
                  "alpha": 0.0, "verbosity": 0, "seed": self.seed or 0}
        if self.loss_type == "rank":
            # One query group: every pair counts, not only the top-ranked ones (xgboost's default).
            params.update(lambdarank_pair_method="mean", lambdarank_num_pair_per_sample=1)
        # Tuning data sets are small (hundreds of rows): one thread trains them about 4x faster
        # than two did on a 2-core machine, so threads are opt-in.
        params["nthread"] = self.num_threads or 1
        return params

    def _train(self, xs: np.ndarray, ys: np.ndarray) -> Any:
        import xgboost as xgb
        top = ys.max()
        labels = ys / top if top > 0 else ys
        data = xgb.DMatrix(xs, label=labels)
        return xgb.train(self._params(), data, num_boost_round=_NUM_BOOST_ROUND)


def _as_training_data(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    xs = np.asarray(xs, dtype=np.float32)
    ys = np.asarray(ys, dtype=np.float64)
    if xs.ndim != 2 or ys.ndim != 1 or xs.shape[0] != ys.shape[0] or xs.shape[0] == 0:
        raise CostModelError(f"fit: expected an (n, features) array and n throughputs, got shapes "
                             f"{xs.shape} and {ys.shape}")
    if not np.all(np.isfinite(ys)) or np.any(ys < 0):
        raise CostModelError("fit: throughputs must be finite and non-negative (failed trials are 0)")
    return xs, ys
