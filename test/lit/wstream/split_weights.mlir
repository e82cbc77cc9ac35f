// RUN: texflow-opt --pass-pipeline='builtin.module(texflow-wstream-split-weights{max-bytes=160})' %s | FileCheck %s
// RUN: texflow-opt --pass-pipeline='builtin.module(texflow-wstream-split-weights{max-bytes=1MiB})' %s | FileCheck %s --check-prefix=BIG

// A contraction whose constant weight (here 512 B, through a unit broadcast)
// exceeds max-bytes is split along the output's last dimension: one slice of
// the constant per piece (cut at compile time), each piece with a fill of its
// own, the results inserted into the whole output.
// CHECK-LABEL: util.func public @f(
// CHECK-SAME: %[[X:.*]]: tensor<1x4x16xf32>
// CHECK: %[[ZERO:.*]] = arith.constant 0.000000e+00 : f32
// CHECK: %[[OUT:.*]] = linalg.fill ins(%[[ZERO]] : f32) outs({{.*}} : tensor<1x4x8xf32>)
// CHECK: %[[C0:.*]] = arith.constant dense<{{.*}}> : tensor<16x2xf32>
// CHECK: %[[B0:.*]] = tensor.expand_shape %[[C0]] {{\[}}[0, 1], [2]] output_shape [1, 16, 2]
// CHECK: %[[F0:.*]] = linalg.fill ins(%[[ZERO]] : f32) outs({{.*}} : tensor<1x4x2xf32>)
// CHECK: %[[P0:.*]] = linalg.batch_matmul ins(%[[X]], %[[B0]] : {{.*}}) outs(%[[F0]] : tensor<1x4x2xf32>)
// CHECK-COUNT-3: linalg.batch_matmul ins(%[[X]], %{{.*}} : tensor<1x4x16xf32>, tensor<1x16x2xf32>)
// CHECK: %[[I0:.*]] = tensor.insert_slice %[[P0]] into %[[OUT]][0, 0, 0] [1, 4, 2] [1, 1, 1]
// CHECK: %[[I1:.*]] = tensor.insert_slice %{{.*}} into %[[I0]][0, 0, 2] [1, 4, 2]
// CHECK: %[[I2:.*]] = tensor.insert_slice %{{.*}} into %[[I1]][0, 0, 4] [1, 4, 2]
// CHECK: %[[I3:.*]] = tensor.insert_slice %{{.*}} into %[[I2]][0, 0, 6] [1, 4, 2]
// CHECK: util.return %[[I3]]
// Under the limit nothing is split; the unit broadcast of the weight becomes a reshape (IREE
// would copy a weight argument on every call where it const-folds a constant).
// BIG-NOT: linalg.generic
// BIG: %[[B:.*]] = tensor.expand_shape %{{.*}} {{\[}}[0, 1], [2]] output_shape [1, 16, 8] : tensor<16x8xf32> into tensor<1x16x8xf32>
// BIG: linalg.batch_matmul ins(%{{.*}}, %[[B]] : tensor<1x4x16xf32>, tensor<1x16x8xf32>)
// BIG-NOT: insert_slice
util.func public @f(%x: tensor<1x4x16xf32>) -> tensor<1x4x8xf32> {
  %cst = arith.constant 0.000000e+00 : f32
  %w = arith.constant dense<[[-0.75, -0.50, -0.25, 0.00, 0.25, 0.50, 0.75, -0.75], [-0.50, -0.25, 0.00, 0.25, 0.50, 0.75, -0.75, -0.50], [-0.25, 0.00, 0.25, 0.50, 0.75, -0.75, -0.50, -0.25], [0.00, 0.25, 0.50, 0.75, -0.75, -0.50, -0.25, 0.00], [0.25, 0.50, 0.75, -0.75, -0.50, -0.25, 0.00, 0.25], [0.50, 0.75, -0.75, -0.50, -0.25, 0.00, 0.25, 0.50], [0.75, -0.75, -0.50, -0.25, 0.00, 0.25, 0.50, 0.75], [-0.75, -0.50, -0.25, 0.00, 0.25, 0.50, 0.75, -0.75], [-0.50, -0.25, 0.00, 0.25, 0.50, 0.75, -0.75, -0.50], [-0.25, 0.00, 0.25, 0.50, 0.75, -0.75, -0.50, -0.25], [0.00, 0.25, 0.50, 0.75, -0.75, -0.50, -0.25, 0.00], [0.25, 0.50, 0.75, -0.75, -0.50, -0.25, 0.00, 0.25], [0.50, 0.75, -0.75, -0.50, -0.25, 0.00, 0.25, 0.50], [0.75, -0.75, -0.50, -0.25, 0.00, 0.25, 0.50, 0.75], [-0.75, -0.50, -0.25, 0.00, 0.25, 0.50, 0.75, -0.75], [-0.50, -0.25, 0.00, 0.25, 0.50, 0.75, -0.75, -0.50]]> : tensor<16x8xf32>
  %e = tensor.empty() : tensor<1x16x8xf32>
  %b = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%w : tensor<16x8xf32>) outs(%e : tensor<1x16x8xf32>) {
  ^bb0(%in: f32, %out: f32):
    linalg.yield %in : f32
  } -> tensor<1x16x8xf32>
  %o = tensor.empty() : tensor<1x4x8xf32>
  %f = linalg.fill ins(%cst : f32) outs(%o : tensor<1x4x8xf32>) -> tensor<1x4x8xf32>
  %r = linalg.batch_matmul ins(%x, %b : tensor<1x4x16xf32>, tensor<1x16x8xf32>) outs(%f : tensor<1x4x8xf32>) -> tensor<1x4x8xf32>
  util.return %r : tensor<1x4x8xf32>
}
