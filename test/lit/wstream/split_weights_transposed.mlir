// RUN: texflow-opt --pass-pipeline='builtin.module(texflow-wstream-split-weights{max-bytes=16})' %s | FileCheck %s

// A generic that adds a unit dimension but also transposes (its input map
// reads (d2, d1)) is not a reshape: it is neither turned into
// tensor.expand_shape nor looked through when splitting the contraction.
// CHECK: #[[T:.*]] = affine_map<(d0, d1, d2) -> (d2, d1)>
// CHECK-LABEL: util.func public @f(
// CHECK-NOT: tensor.expand_shape
// CHECK: %[[B:.*]] = linalg.generic {indexing_maps = [#[[T]],
// CHECK: linalg.batch_matmul ins(%{{.*}}, %[[B]] : tensor<1x4x4xf32>, tensor<1x4x4xf32>)
// CHECK-NOT: insert_slice
// CHECK: util.return
// CHECK-LABEL: util.func public @g(
// CHECK-NOT: linalg.generic
// CHECK: %[[C0:.*]] = arith.constant dense<{{\[}}[1.000000e+00], [5.000000e+00], [9.000000e+00], [1.300000e+01]]> : tensor<4x1xf32>
// CHECK: %[[E0:.*]] = tensor.expand_shape %[[C0]] {{\[}}[0, 1], [2]] output_shape [1, 4, 1]
// CHECK: linalg.batch_matmul ins(%{{.*}}, %[[E0]] : tensor<1x4x4xf32>, tensor<1x4x1xf32>)
// CHECK-COUNT-3: linalg.batch_matmul ins(%{{.*}}, %{{.*}} : tensor<1x4x4xf32>, tensor<1x4x1xf32>)
// CHECK-COUNT-4: tensor.insert_slice
// CHECK-NOT: linalg.generic
// CHECK: util.return
util.func public @f(%x: tensor<1x4x4xf32>) -> tensor<1x4x4xf32> {
  %cst = arith.constant 0.000000e+00 : f32
  %w = arith.constant dense<[[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0], [9.0, 10.0, 11.0, 12.0], [13.0, 14.0, 15.0, 16.0]]> : tensor<4x4xf32>
  %e = tensor.empty() : tensor<1x4x4xf32>
  %b = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d2, d1)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%w : tensor<4x4xf32>) outs(%e : tensor<1x4x4xf32>) {
  ^bb0(%in: f32, %out: f32):
    linalg.yield %in : f32
  } -> tensor<1x4x4xf32>
  %o = tensor.empty() : tensor<1x4x4xf32>
  %f = linalg.fill ins(%cst : f32) outs(%o : tensor<1x4x4xf32>) -> tensor<1x4x4xf32>
  %r = linalg.batch_matmul ins(%x, %b : tensor<1x4x4xf32>, tensor<1x4x4xf32>) outs(%f : tensor<1x4x4xf32>) -> tensor<1x4x4xf32>
  util.return %r : tensor<1x4x4xf32>
}
// The same broadcast without the transpose (input map (d1, d2)) is a reshape: it becomes
// tensor.expand_shape and the 64-byte weight is split in chunks of at most 16 bytes.
util.func public @g(%x: tensor<1x4x4xf32>) -> tensor<1x4x4xf32> {
  %cst = arith.constant 0.000000e+00 : f32
  %w = arith.constant dense<[[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0], [9.0, 10.0, 11.0, 12.0], [13.0, 14.0, 15.0, 16.0]]> : tensor<4x4xf32>
  %e = tensor.empty() : tensor<1x4x4xf32>
  %b = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%w : tensor<4x4xf32>) outs(%e : tensor<1x4x4xf32>) {
  ^bb0(%in: f32, %out: f32):
    linalg.yield %in : f32
  } -> tensor<1x4x4xf32>
  %o = tensor.empty() : tensor<1x4x4xf32>
  %f = linalg.fill ins(%cst : f32) outs(%o : tensor<1x4x4xf32>) -> tensor<1x4x4xf32>
  %r = linalg.batch_matmul ins(%x, %b : tensor<1x4x4xf32>, tensor<1x4x4xf32>) outs(%f : tensor<1x4x4xf32>) -> tensor<1x4x4xf32>
  util.return %r : tensor<1x4x4xf32>
}
