// SmartMem's "eliminate 2nd": a contraction (ILD&Var, variable output) writes
// the layout of the Reshape -> Transpose chain after it, so the chain goes away
// for every user.  On by default for GPU targets; an option elsewhere.
// RUN: texflow-opt --pass-pipeline='builtin.module(texflow-raise-layout,texflow-eliminate-layout{fold-into-producers=true},texflow-lower-layout,canonicalize)' %s | FileCheck %s
// RUN: texflow-opt --pass-pipeline='builtin.module(texflow-raise-layout,texflow-eliminate-layout,texflow-lower-layout,canonicalize)' %s | FileCheck %s --check-prefix=OFF

// The head split of attention: [1,S,D] @ W -> [1,S,H,Dh] -> [1,H,S,Dh].
// CHECK-LABEL: func.func @head_split
// CHECK: %[[W:.+]] = tensor.expand_shape %arg1 {{\[}}[0], [1], [2, 3]] output_shape [1, 16, 4, 8] : tensor<1x16x32xf32> into tensor<1x16x4x8xf32>
// CHECK: %[[G:.+]] = linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]{{.*}} ins(%arg0, %[[W]] : tensor<1x8x16xf32>, tensor<1x16x4x8xf32>) outs(%{{.+}} : tensor<1x4x8x8xf32>)
// CHECK-NOT: linalg.transpose
// CHECK: return %[[G]], %[[G]]
// OFF-LABEL: func.func @head_split
// OFF: linalg.batch_matmul
// OFF: linalg.transpose
func.func @head_split(%arg0: tensor<1x8x16xf32>, %arg1: tensor<1x16x32xf32>) -> (tensor<1x4x8x8xf32>, tensor<1x4x8x8xf32>) {
  %z = arith.constant 0.0 : f32
  %o = tensor.empty() : tensor<1x8x32xf32>
  %f = linalg.fill ins(%z : f32) outs(%o : tensor<1x8x32xf32>) -> tensor<1x8x32xf32>
  %m = linalg.batch_matmul ins(%arg0, %arg1 : tensor<1x8x16xf32>, tensor<1x16x32xf32>) outs(%f : tensor<1x8x32xf32>) -> tensor<1x8x32xf32>
  %x = tensor.expand_shape %m [[0], [1], [2, 3]] output_shape [1, 8, 4, 8] : tensor<1x8x32xf32> into tensor<1x8x4x8xf32>
  %e = tensor.empty() : tensor<1x4x8x8xf32>
  %t = linalg.transpose ins(%x : tensor<1x8x4x8xf32>) outs(%e : tensor<1x4x8x8xf32>) permutation = [0, 2, 1, 3]
  return %t, %t : tensor<1x4x8x8xf32>, tensor<1x4x8x8xf32>
}

// Not when the result would write a batch loop inside a row loop: MobileViT's attention P.V
// [16,S,S] @ [16,S,D] -> [4,4,S,D] -> [4,S,4,D] would become a contraction writing
// (b0, m, b1, n), whose batch loops IREE cannot merge (its GPU matmul configuration then does
// not apply); the batch_matmul and the transpose stay.
// CHECK-LABEL: func.func @interleaved_batch
// CHECK: linalg.batch_matmul
// CHECK: linalg.transpose
// CHECK-SAME: permutation = [0, 2, 1, 3]
func.func @interleaved_batch(%p: tensor<16x8x8xf32>, %v: tensor<16x8x4xf32>) -> tensor<4x8x4x4xf32> {
  %z = arith.constant 0.0 : f32
  %o = tensor.empty() : tensor<16x8x4xf32>
  %f = linalg.fill ins(%z : f32) outs(%o : tensor<16x8x4xf32>) -> tensor<16x8x4xf32>
  %m = linalg.batch_matmul ins(%p, %v : tensor<16x8x8xf32>, tensor<16x8x4xf32>) outs(%f : tensor<16x8x4xf32>) -> tensor<16x8x4xf32>
  %x = tensor.expand_shape %m [[0, 1], [2], [3]] output_shape [4, 4, 8, 4] : tensor<16x8x4xf32> into tensor<4x4x8x4xf32>
  %e = tensor.empty() : tensor<4x8x4x4xf32>
  %t = linalg.transpose ins(%x : tensor<4x4x8x4xf32>) outs(%e : tensor<4x8x4x4xf32>) permutation = [0, 2, 1, 3]
  return %t : tensor<4x8x4x4xf32>
}
