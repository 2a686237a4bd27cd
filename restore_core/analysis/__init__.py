"""Analysis tools: model complexity (parameters, FLOPs incl. the selective scan, latency / memory scaling), effective
receptive fields, SS2D channel activations, and small comparison networks / token-mixing blocks."""
from .complexity import (THOP_COUNTED_TYPES, FlopReport, ScalingResult, count_flops, count_parameters,
                         count_parameters_thop_style, flops_at_sizes, loglog_slope, thop_missed_parameters,
                         parameter_summary, measure_scaling, peak_memory_bytes,
                         selective_scan_ops)
from .erf import (AREA_THRESHOLDS, DISPLAY_TRANSFORMS, ERFSummary, area_ratio, area_ratios, display_transform,
                  erf_map, erf_summary, mass_within, row_major_split)
from .channels import (channel_activations, effective_rank, inactive_share, remove_channel_attention,
                       sorted_mean_activation, ss2d_channel_activations, ss2d_channel_statistics, ss2d_modules)
from .baselines import MIXER_KINDS, GlobalAttention, MixerBlock, PlainCNN, WindowAttentionNet

__all__ = ["THOP_COUNTED_TYPES", "FlopReport", "ScalingResult", "count_flops", "count_parameters",
           "count_parameters_thop_style", "flops_at_sizes", "loglog_slope", "thop_missed_parameters",
           "parameter_summary", "measure_scaling", "peak_memory_bytes", "selective_scan_ops"]
__all__ += ["AREA_THRESHOLDS", "DISPLAY_TRANSFORMS", "ERFSummary", "area_ratio", "area_ratios", "display_transform",
            "erf_map", "erf_summary", "mass_within", "row_major_split"]
__all__ += ["channel_activations", "ss2d_channel_activations", "effective_rank", "inactive_share",
            "sorted_mean_activation", "ss2d_modules", "ss2d_channel_statistics", "remove_channel_attention"]
__all__ += ["MIXER_KINDS", "GlobalAttention", "MixerBlock", "PlainCNN", "WindowAttentionNet"]
