"""State-space model core: discretization, the selective scan and its backends, 2D scan orders, SS2D.

``restore_core.ssm.discretize`` is the module (its dispatcher is ``restore_core.ssm.discretize.discretize``).
"""
from .discretize import (DISCRETIZATIONS, causal_conv, convergence_order, discrete_step_response, discretize_bilinear,
                         discretize_euler, discretize_zoh, euler_max_step, piecewise_constant_response, selective_discretize,
                         ssm_convolution, ssm_kernel, ssm_recurrence, spectral_radius, step_error,
                         step_response, time_varying_recurrence)
from .scan import ScanBackend, backend_descriptions, list_backends, register_backend, selective_scan, selective_scan_ref
from .cross_scan import ScanOrder, cross_merge, cross_scan, get_scan_order, list_scan_orders, register_scan_order
from .ss2d import SS2D

__all__ = ["DISCRETIZATIONS", "causal_conv", "convergence_order", "discrete_step_response", "discretize_bilinear",
           "discretize_euler", "discretize_zoh", "euler_max_step", "spectral_radius", "piecewise_constant_response", "selective_discretize",
           "ssm_convolution", "ssm_kernel", "ssm_recurrence", "step_error", "step_response", "time_varying_recurrence",
           "ScanBackend", "backend_descriptions", "list_backends", "register_backend", "selective_scan", "selective_scan_ref",
           "ScanOrder", "cross_merge", "cross_scan", "get_scan_order", "list_scan_orders", "register_scan_order",
           "SS2D"]
