// RUN: texflow-opt --verify-diagnostics --pass-pipeline='builtin.module(texflow-wstream-plan{memory-budget=3KiB chunk-bytes=256})' %s | FileCheck %s --check-prefix=SMALL
// RUN: not texflow-opt --pass-pipeline='builtin.module(texflow-wstream-plan{memory-budget=-5MiB})' %s 2>&1 | FileCheck %s --check-prefix=NEG
// RUN: not texflow-opt --pass-pipeline='builtin.module(texflow-wstream-plan{memory-budget=lots})' %s 2>&1 | FileCheck %s --check-prefix=BAD
// RUN: texflow-opt --verify-diagnostics --pass-pipeline='builtin.module(texflow-wstream-plan)' %s | FileCheck %s --check-prefix=NONE

// Budgets below the minimum name the minimum; bad budget strings are one line, from the
// pipeline's option parser (memory-budget is a size option), naming the pass and the option.
// SMALL: error: {{.*}}memory budget 3.00KiB (3072 bytes) is below the minimum 4.75KiB (4864 bytes) needed at stage 1 (linalg.matmul): its weights plus 768B of live activations
// NEG: texflow-opt: error: pass 'texflow-wstream-plan': option 'memory-budget' must be positive, got '-5MiB'
// NEG-NOT: Traceback
// BAD: texflow-opt: error: pass 'texflow-wstream-plan': cannot parse option 'memory-budget' 'lots' (expected e.g. 256MiB, 1.5GB or a byte count)
// NONE: error: {{.*}}needs memory-budget=<size>
util.func public @f(%x: tensor<4x16xf32>) -> tensor<4x32xf32> {
  %cst = arith.constant 0.000000e+00 : f32
  %w1 = arith.constant dense<0.5> : tensor<16x32xf32>
  %b = arith.constant dense<0.5> : tensor<16x32xf32>
  %1 = tensor.empty() : tensor<4x32xf32>
  %2 = linalg.fill ins(%cst : f32) outs(%1 : tensor<4x32xf32>) -> tensor<4x32xf32>
  %3 = linalg.matmul ins(%x, %w1 : tensor<4x16xf32>, tensor<16x32xf32>) outs(%2 : tensor<4x32xf32>) -> tensor<4x32xf32>
  %4 = linalg.matmul ins(%x, %b : tensor<4x16xf32>, tensor<16x32xf32>) outs(%3 : tensor<4x32xf32>) -> tensor<4x32xf32>
  util.return %4 : tensor<4x32xf32>
}
