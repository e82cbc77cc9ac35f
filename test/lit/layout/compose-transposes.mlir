// RUN: texflow-opt --pass-pipeline='builtin.module(texflow-compose-transposes)' %s | FileCheck %s
// RUN: texflow-opt --pass-pipeline='builtin.module(texflow-compose-transposes)' --texflow-statistics %s 2>&1 >/dev/null | FileCheck %s --check-prefix=STATS

// Three rotations by [2,0,1] are the identity: the chain disappears.
// CHECK-LABEL: func.func @rotate_three_times
// CHECK-NOT:     linalg.transpose
// CHECK:         return %arg0
func.func @rotate_three_times(%arg0: tensor<2x3x4xf32>) -> tensor<2x3x4xf32> {
  %e0 = tensor.empty() : tensor<4x2x3xf32>
  %t0 = linalg.transpose ins(%arg0 : tensor<2x3x4xf32>) outs(%e0 : tensor<4x2x3xf32>) permutation = [2, 0, 1]
  %e1 = tensor.empty() : tensor<3x4x2xf32>
  %t1 = linalg.transpose ins(%t0 : tensor<4x2x3xf32>) outs(%e1 : tensor<3x4x2xf32>) permutation = [2, 0, 1]
  %e2 = tensor.empty() : tensor<2x3x4xf32>
  %t2 = linalg.transpose ins(%t1 : tensor<3x4x2xf32>) outs(%e2 : tensor<2x3x4xf32>) permutation = [2, 0, 1]
  return %t2 : tensor<2x3x4xf32>
}

// Two rotations compose into one transpose with permutation [1,2,0].
// CHECK-LABEL: func.func @rotate_twice
// CHECK:         %[[T:.+]] = linalg.transpose ins(%arg0 : tensor<2x3x4xf32>) outs(%{{.+}} : tensor<3x4x2xf32>) permutation = [1, 2, 0]
// CHECK-NOT:     linalg.transpose
// CHECK:         return %[[T]]
func.func @rotate_twice(%arg0: tensor<2x3x4xf32>) -> tensor<3x4x2xf32> {
  %e0 = tensor.empty() : tensor<4x2x3xf32>
  %t0 = linalg.transpose ins(%arg0 : tensor<2x3x4xf32>) outs(%e0 : tensor<4x2x3xf32>) permutation = [2, 0, 1]
  %e1 = tensor.empty() : tensor<3x4x2xf32>
  %t1 = linalg.transpose ins(%t0 : tensor<4x2x3xf32>) outs(%e1 : tensor<3x4x2xf32>) permutation = [2, 0, 1]
  return %t1 : tensor<3x4x2xf32>
}

// The first transpose has another user: it stays, the second is rewritten
// to read the original tensor.
// CHECK-LABEL: func.func @shared_inner
// CHECK:         %[[A:.+]] = linalg.transpose ins(%arg0 : {{.+}} permutation = [1, 0]
// CHECK-NOT:     linalg.transpose
// CHECK:         return %[[A]], %arg0
func.func @shared_inner(%arg0: tensor<2x3xf32>) -> (tensor<3x2xf32>, tensor<2x3xf32>) {
  %e0 = tensor.empty() : tensor<3x2xf32>
  %t0 = linalg.transpose ins(%arg0 : tensor<2x3xf32>) outs(%e0 : tensor<3x2xf32>) permutation = [1, 0]
  %e1 = tensor.empty() : tensor<2x3xf32>
  %t1 = linalg.transpose ins(%t0 : tensor<3x2xf32>) outs(%e1 : tensor<2x3xf32>) permutation = [1, 0]
  return %t0, %t1 : tensor<3x2xf32>, tensor<2x3xf32>
}

// STATS: texflow-compose-transposes: 4 transpose pairs composed
