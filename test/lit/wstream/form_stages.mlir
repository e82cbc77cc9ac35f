// RUN: texflow-opt --pass-pipeline='builtin.module(texflow-wstream-form-stages)' %s | FileCheck %s

// matmul + bias add + relu fuse into one "reusable" stage (IREE's dispatch),
// the row reduction starts a "hierarchical" stage and the elementwise op that
// consumes it joins it; the second matmul is its own stage.

#map = affine_map<(d0, d1) -> (d0, d1)>
#map1 = affine_map<(d0, d1) -> (d1)>
#map2 = affine_map<(d0, d1) -> (d0)>
// CHECK-LABEL: util.func public @mlp
util.func public @mlp(%x: tensor<4x16xf32>) -> tensor<4x8xf32> {
  %cst = arith.constant 0.000000e+00 : f32
  %w1 = arith.constant dense<0.5> : tensor<16x32xf32>
  %b1 = arith.constant dense<0.25> : tensor<32xf32>
  %w2 = arith.constant dense<0.125> : tensor<32x8xf32>
  %1 = tensor.empty() : tensor<4x32xf32>
  %2 = linalg.fill ins(%cst : f32) outs(%1 : tensor<4x32xf32>) -> tensor<4x32xf32>
  // CHECK: "wstream.stage"() {{{.*}}id = 0 : i64, kind = "reusable"}
  // CHECK-NEXT: linalg.matmul
  %3 = linalg.matmul ins(%x, %w1 : tensor<4x16xf32>, tensor<16x32xf32>) outs(%2 : tensor<4x32xf32>) -> tensor<4x32xf32>
  // CHECK-NOT: wstream.stage
  // CHECK: arith.addf
  %4 = linalg.generic {indexing_maps = [#map, #map1, #map], iterator_types = ["parallel", "parallel"]} ins(%3, %b1 : tensor<4x32xf32>, tensor<32xf32>) outs(%1 : tensor<4x32xf32>) {
  ^bb0(%in: f32, %in_4: f32, %out: f32):
    %22 = arith.addf %in, %in_4 : f32
    linalg.yield %22 : f32
  } -> tensor<4x32xf32>
  // CHECK-NOT: wstream.stage
  // CHECK: arith.maximumf
  %5 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel"]} ins(%4 : tensor<4x32xf32>) outs(%1 : tensor<4x32xf32>) {
  ^bb0(%in: f32, %out: f32):
    %22 = arith.maximumf %in, %cst : f32
    linalg.yield %22 : f32
  } -> tensor<4x32xf32>
  %e = tensor.empty() : tensor<4xf32>
  %f = linalg.fill ins(%cst : f32) outs(%e : tensor<4xf32>) -> tensor<4xf32>
  // CHECK: "wstream.stage"() {{{.*}}id = 1 : i64, kind = "hierarchical"}
  // CHECK-NEXT: linalg.generic {{.*}}"reduction"
  %r = linalg.generic {indexing_maps = [#map, #map2], iterator_types = ["parallel", "reduction"]} ins(%5 : tensor<4x32xf32>) outs(%f : tensor<4xf32>) {
  ^bb0(%in: f32, %out: f32):
    %22 = arith.addf %in, %out : f32
    linalg.yield %22 : f32
  } -> tensor<4xf32>
  // CHECK-NOT: wstream.stage
  // CHECK: arith.divf
  %n = linalg.generic {indexing_maps = [#map, #map2, #map], iterator_types = ["parallel", "parallel"]} ins(%5, %r : tensor<4x32xf32>, tensor<4xf32>) outs(%1 : tensor<4x32xf32>) {
  ^bb0(%in: f32, %s: f32, %out: f32):
    %22 = arith.divf %in, %s : f32
    linalg.yield %22 : f32
  } -> tensor<4x32xf32>
  %6 = tensor.empty() : tensor<4x8xf32>
  %7 = linalg.fill ins(%cst : f32) outs(%6 : tensor<4x8xf32>) -> tensor<4x8xf32>
  // CHECK: "wstream.stage"() {{{.*}}id = 2 : i64, kind = "reusable"}
  // CHECK-NEXT: linalg.matmul
  %8 = linalg.matmul ins(%n, %w2 : tensor<4x32xf32>, tensor<32x8xf32>) outs(%7 : tensor<4x8xf32>) -> tensor<4x8xf32>
  // CHECK-NOT: wstream.stage
  // CHECK: util.return
  util.return %8 : tensor<4x8xf32>
}
