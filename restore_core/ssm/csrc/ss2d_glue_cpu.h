// SS2D's inference glue around the scan (ss2d_glue_cpu.cpp); registered with the scan kernels' Python module.
#pragma once

#include <torch/extension.h>

at::Tensor layernorm_silu_gate(at::Tensor y, at::Tensor z, at::Tensor weight, c10::optional<at::Tensor> bias,
                               double eps);
