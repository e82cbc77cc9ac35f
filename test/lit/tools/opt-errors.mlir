// Bad pipelines and bad IR give one-line errors and a non-zero exit.
// RUN: not texflow-opt --pass-pipeline='builtin.module(texflow-no-such-pass)' %s 2>&1 | FileCheck %s --check-prefix=UNKNOWN
// UNKNOWN: texflow-opt: error: unknown texflow pass 'texflow-no-such-pass'
// RUN: not texflow-opt --pass-pipeline='builtin.module(texflow-compose-transposes{bogus=1})' %s 2>&1 | FileCheck %s --check-prefix=OPTION
// OPTION: texflow-opt: error: pass 'texflow-compose-transposes' has no option 'bogus'
// RUN: not texflow-opt --pass-pipeline='builtin.module(not-a-pass)' %s 2>&1 | FileCheck %s --check-prefix=MLIRPASS
// MLIRPASS: texflow-opt: error: cannot add 'not-a-pass' to the pipeline: 'not-a-pass' does not refer to a registered pass
// RUN: not texflow-opt --pass-pipeline='builtin.module()' %inputs/bad.mlir 2>&1 | FileCheck %s --check-prefix=PARSE
// PARSE: texflow-opt: error: cannot parse {{.*}}bad.mlir: {{.*}}
// PARSE-NOT: Traceback
// RUN: not texflow-opt --pass-pipeline='builtin.module(texflow-pack-matmul{tiles=16x16})' %s 2>&1 | FileCheck %s --check-prefix=TILES
// TILES: texflow-opt: error: pipeline failed: texflow-pack-matmul: tiles must be 'auto' or MxNxK (e.g. 16x16x1), not '16x16'
// TILES-NOT: Traceback

// IREE passes and texflow passes mix in one pipeline.
// (canonicalize would fold the pair too, so the statistic shows texflow's pass did it first.)
// RUN: texflow-opt --pass-pipeline='builtin.module(texflow-compose-transposes,canonicalize,cse)' --texflow-statistics %s 2>%t.stats | FileCheck %s
// RUN: FileCheck %s --check-prefix=STATS < %t.stats
// CHECK-LABEL: func.func @f
// CHECK-NEXT: return %arg0
// STATS: texflow-compose-transposes: 1 transpose pairs composed
func.func @f(%arg0: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %e0 = tensor.empty() : tensor<3x2xf32>
  %t0 = linalg.transpose ins(%arg0 : tensor<2x3xf32>) outs(%e0 : tensor<3x2xf32>) permutation = [1, 0]
  %e1 = tensor.empty() : tensor<2x3xf32>
  %t1 = linalg.transpose ins(%t0 : tensor<3x2xf32>) outs(%e1 : tensor<2x3xf32>) permutation = [1, 0]
  return %t1 : tensor<2x3xf32>
}
