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
// RUN: texflow-opt --pass-pipeline='builtin.module(canonicalize,texflow-compose-transposes,cse)' %s | FileCheck %s
// CHECK: func.func @f
func.func @f(%arg0: tensor<2xf32>) -> tensor<2xf32> {
  return %arg0 : tensor<2xf32>
}
