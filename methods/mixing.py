"""How ALM methods start their per-instance weights and keep them feasible after each meta
step. Weights are [N, 1 + M]: CE, then KD with each teacher.

- ``ConvexMixing`` (``almkd``, ``almkd_full``: the released refresh with convex weights, the
  suite's variant): one teacher, a scalar a_i in [0, 1] with weights (1 - a_i, a_i), stepped
  along dL/da = dL/dw_KD - dL/dw_CE and clamped; several teachers, weights on the simplex over
  {CE, KD_1..KD_M}, Euclidean projection after each step.
- ``ClampedMixing`` (``amal``, the authors' released code, KD/LearnMultiLambdaMeta.py @
  6c4764b): independent weights per term, plain gradient steps, clamped to [1e-7, 2 - 1e-7]
  after each (their ``max_value - 1e-7``).
- ``V1Mixing`` (``almkd_v1``, the seed paper's code, getLambda/ @ 642fd9b): uniform random
  initial KD weights; each KD weight stepped along dL/dw_KDm - dL/dw_CE and clamped to
  [1e-7, 1 - 1e-7]; CE weight = 1 - max_m KD_m after every step (their
  LearnMultiLambdaMeta; with one teacher exactly their LearnLambdaMeta's 1 - lambda).

Initial weights of ``ConvexMixing`` and ``ClampedMixing`` follow the protocol's one KD
convention (``benchmark.spec.protocol.kd_weights``), the same as ``kd`` and ``fixed_alpha``.
"""

from __future__ import annotations

import torch

from benchmark.core.errors import UserError
from benchmark.spec.protocol import kd_weights


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


def _constant(n: int, ce: float, each: float, n_teachers: int, device) -> torch.Tensor:
    w = torch.full((n, n_teachers + 1), each, device=device)
    w[:, 0] = ce
    return w


class ConvexMixing:
    name = "convex"

    @staticmethod
    def init(n, n_teachers, kd_share, protocol, device, generator=None) -> torch.Tensor:
        ce, each = kd_weights(protocol, kd_share, n_teachers)
        if ce + each * n_teachers > 1.0 + 1e-9:
            raise UserError(
                f"convex mixing keeps the weights on the simplex (total 1), but protocol "
                f"{protocol!r} starts each of {n_teachers} teachers at {each:g} (total "
                f"{ce + each * n_teachers:g}); use protocol suite, or amal / almkd_v1")
        return _constant(n, ce, each, n_teachers, device)

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
    def init(n, n_teachers, kd_share, protocol, device, generator=None) -> torch.Tensor:
        ce, each = kd_weights(protocol, kd_share, n_teachers)
        return _constant(n, ce, each, n_teachers, device)

    @classmethod
    def step(cls, w: torch.Tensor, grad: torch.Tensor, lr: float) -> torch.Tensor:
        return (w - lr * grad).clamp(cls.LOW, cls.HIGH)


class V1Mixing:
    name = "v1"
    LOW, HIGH = 1e-7, 1.0 - 1e-7

    @staticmethod
    def _with_ce(kd: torch.Tensor) -> torch.Tensor:
        return torch.cat([1.0 - kd.max(dim=1, keepdim=True).values, kd], dim=1)

    @classmethod
    def init(cls, n, n_teachers, kd_share, protocol, device, generator=None) -> torch.Tensor:
        """Their ``torch.rand(N)`` (one teacher) / ``torch.rand((N, M + 1))`` (several): KD
        weights uniform on [0, 1), from the run's own seeded generator."""
        kd = torch.rand((n, n_teachers), generator=generator, device="cpu").to(device)
        return cls._with_ce(kd)

    @classmethod
    def step(cls, w: torch.Tensor, grad: torch.Tensor, lr: float) -> torch.Tensor:
        kd = (w[:, 1:] - lr * (grad[:, 1:] - grad[:, :1])).clamp(cls.LOW, cls.HIGH)
        return cls._with_ce(kd)
