"""How ALM methods keep their per-instance weights feasible after each meta step.

- ``ConvexMixing`` (``almkd``, the seed paper v1): one teacher, a scalar a_i in [0, 1] with
  weights (1 - a_i, a_i), stepped along dL/da = dL/dw_KD - dL/dw_CE and clamped; several
  teachers, weights on the simplex over {CE, KD_1..KD_M}, Euclidean projection after each
  step (the suite's own generalisation: the v1 code had no settled multi-teacher form).
- ``ClampedMixing`` (``amal``, the authors' released code): independent weights per term,
  plain gradient steps, clamped to [1e-7, 2 - 1e-7] after each (their ``max_value - 1e-7``).
"""

from __future__ import annotations

import torch


def project_simplex(v: torch.Tensor) -> torch.Tensor:
    """Row-wise Euclidean projection onto {w >= 0, sum w = 1} (sort-based, Held et al. 1974;
    Duchi et al. 2008)."""
    k = v.shape[-1]
    u, _ = torch.sort(v, dim=-1, descending=True)
    css = torch.cumsum(u, dim=-1) - 1.0
    ind = torch.arange(1, k + 1, device=v.device, dtype=v.dtype)
    cond = (u - css / ind) > 0
    rho = cond.to(v.dtype).cumsum(-1).argmax(-1, keepdim=True)  # last index where cond holds
    theta = css.gather(-1, rho) / (rho + 1).to(v.dtype)
    return torch.clamp(v - theta, min=0.0)


class ConvexMixing:
    name = "convex"

    @staticmethod
    def init(n: int, n_teachers: int, kd_share: float, device) -> torch.Tensor:
        w = torch.full((n, n_teachers + 1), kd_share / n_teachers, device=device)
        w[:, 0] = 1.0 - kd_share
        return w

    @staticmethod
    def step(w: torch.Tensor, grad: torch.Tensor, lr: float) -> torch.Tensor:
        if w.shape[1] == 2:
            a = (w[:, 1] - lr * (grad[:, 1] - grad[:, 0])).clamp(0.0, 1.0)
            return torch.stack([1.0 - a, a], dim=1)
        return project_simplex(w - lr * grad)


class ClampedMixing:
    name = "clamped"
    LOW, HIGH = 1e-7, 2.0 - 1e-7

    @staticmethod
    def init(n: int, n_teachers: int, kd_share: float, device) -> torch.Tensor:
        w = torch.full((n, n_teachers + 1), kd_share, device=device)
        w[:, 0] = 1.0 - kd_share
        return w

    @classmethod
    def step(cls, w: torch.Tensor, grad: torch.Tensor, lr: float) -> torch.Tensor:
        return (w - lr * grad).clamp(cls.LOW, cls.HIGH)
