"""Analysis tools: model complexity (parameters, FLOPs incl. the selective scan, latency / memory scaling)."""
from .complexity import (THOP_COUNTED_TYPES, FlopReport, ScalingResult, count_flops, count_parameters,
                         count_parameters_thop_style, loglog_slope,
                         parameter_summary, measure_scaling, peak_memory_bytes,
                         selective_scan_ops)

__all__ = ["THOP_COUNTED_TYPES", "FlopReport", "ScalingResult", "count_flops", "count_parameters",
           "count_parameters_thop_style", "loglog_slope", "parameter_summary", "measure_scaling", "peak_memory_bytes",
           "selective_scan_ops"]
