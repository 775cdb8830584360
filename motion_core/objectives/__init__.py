"""Training objectives for one-shot motion transfer, composed from a serialisable spec.

Each term is a pure function of one training step's tensors (:class:`StepTensors`); a spec
(:class:`ObjectiveSpec`, JSON round-trip) chooses and weights them::

    objective = build_objective(ObjectiveSpec(base_loss="vmc", sma_global_weight=0.4))
    result = objective(StepTensors.for_noise_prediction(eps_hat, eps, x0, x_t, abar_t), generator)
    result.total.backward(); log(result.terms)

Terms: noise MSE (:mod:`.mse`), VMC's residual loss (:mod:`.vmc`), MotionDirector's debiased loss
(:mod:`.motion_director`) and SMA's wavelet and Fourier regularisers (:mod:`.sma`, :mod:`.dwt`).
"""

from .compose import Objective, ObjectiveResult, build_objective
from .dwt import WAVELETS, dwt1d, max_levels
from .spec import BASE_LOSSES, SPEC_VERSION, ObjectiveSpec, parse_level_weights
from .step import X0_ESTIMATES, StepTensors, x0_motion

__all__ = ["Objective", "ObjectiveResult", "build_objective", "ObjectiveSpec", "StepTensors", "BASE_LOSSES",
           "SPEC_VERSION", "WAVELETS", "X0_ESTIMATES", "dwt1d", "max_levels", "parse_level_weights", "x0_motion"]
