// RUN: texflow-opt --pass-pipeline='builtin.module(texflow-wstream-plan{memory-budget=3840 chunk-bytes=256 time-limit=5.0})' %s | FileCheck %s
// RUN: texflow-opt --pass-pipeline='builtin.module(texflow-wstream-plan{memory-budget=3840 chunk-bytes=256 time-limit=5.0})' %s | iree-opt --irdl-file=%irdl_dir/wstream.irdl.mlir | FileCheck %s --check-prefix=IRDL
// RUN: texflow-opt --pass-pipeline='builtin.module(texflow-wstream-plan{memory-budget=1MiB chunk-bytes=256})' %s | FileCheck %s --check-prefix=ROOMY

// Two matmuls: group 0 (w1, b1: 9 chunks of 256 B) is first used by stage 0
// and always preloaded; group 1 (w2: 4 chunks) fits only by streaming it
// (3840 B = 768 B of activations at stage 0 + 9 + 3 chunks at most).
// Stage 0's capacity is 2 chunks, so 2 chunks overlap its compute and 2 are
// read while stage 1 waits.  With 1 MiB everything is preloaded, no stall.

#map = affine_map<(d0, d1) -> (d0, d1)>
#map1 = affine_map<(d0, d1) -> (d1)>
// CHECK-LABEL: util.func public @mlp
// CHECK-NEXT: "wstream.plan"() {budget = 3840 : i64, chunk_bytes = 256 : i64, {{.*}}peak_bytes = 3840 : i64, preloaded_bytes = 2304 : i64, {{.*}}status = "optimal", streamed_bytes = 1024 : i64}
// CHECK-NEXT: %[[T0:.*]] = "wstream.load"() {bytes = 2176 : i64, chunks = 9 : i64, group = 0 : i64, preload = true, schedule = array<i64>}
// CHECK: %[[W1:.*]] = arith.constant dense<5.000000e-01> : tensor<16x32xf32>
// CHECK: %[[W2:.*]] = arith.constant dense<1.250000e-01> : tensor<32x8xf32>
// CHECK: %[[T1:.*]] = "wstream.load"() {bytes = 1024 : i64, chunks = 4 : i64, group = 1 : i64, preload = false, schedule = array<i64: 0, 0, 2, 1, 2, 0>}
// CHECK-NEXT: "wstream.stage"() {{{.*}}id = 0 : i64, kind = "reusable"}
// CHECK-NEXT: %[[R1:.*]] = "wstream.wait"(%[[T0]], %[[W1]]) {group = 0 : i64, stage = 0 : i64}
// CHECK: linalg.matmul ins(%arg0, %[[R1]] :
// CHECK: "wstream.release"(%[[T0]]) {group = 0 : i64, stage = 0 : i64}
// CHECK: "wstream.stage"() {{{.*}}id = 1 : i64, kind = "reusable"}
// CHECK-NEXT: %[[R2:.*]] = "wstream.wait"(%[[T1]], %[[W2]]) {group = 1 : i64, stage = 1 : i64}
// CHECK-NEXT: %[[M:.*]] = linalg.matmul ins(%{{.*}}, %[[R2]] :
// CHECK-NEXT: "wstream.release"(%[[T1]]) {group = 1 : i64, stage = 1 : i64}
// CHECK-NEXT: util.return %[[M]]

// IRDL: "wstream.plan"
// IRDL-COUNT-3: "wstream.wait"

// ROOMY: "wstream.plan"() {{{.*}}stall_s = 0.000000e+00 : f64, status = "optimal", streamed_bytes = 0 : i64}
// ROOMY-COUNT-2: preload = true
util.func public @mlp(%x: tensor<4x16xf32>) -> tensor<4x8xf32> {
  %cst = arith.constant 0.000000e+00 : f32
  %w1 = arith.constant dense<0.5> : tensor<16x32xf32>
  %b1 = arith.constant dense<0.25> : tensor<32xf32>
  %w2 = arith.constant dense<0.125> : tensor<32x8xf32>
  %1 = tensor.empty() : tensor<4x32xf32>
  %2 = linalg.fill ins(%cst : f32) outs(%1 : tensor<4x32xf32>) -> tensor<4x32xf32>
  %3 = linalg.matmul ins(%x, %w1 : tensor<4x16xf32>, tensor<16x32xf32>) outs(%2 : tensor<4x32xf32>) -> tensor<4x32xf32>
  %4 = linalg.generic {indexing_maps = [#map, #map1, #map], iterator_types = ["parallel", "parallel"]} ins(%3, %b1 : tensor<4x32xf32>, tensor<32xf32>) outs(%1 : tensor<4x32xf32>) {
  ^bb0(%in: f32, %in_4: f32, %out: f32):
    %22 = arith.addf %in, %in_4 : f32
    linalg.yield %22 : f32
  } -> tensor<4x32xf32>
  %5 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel"]} ins(%4 : tensor<4x32xf32>) outs(%1 : tensor<4x32xf32>) {
  ^bb0(%in: f32, %out: f32):
    %22 = arith.maximumf %in, %cst : f32
    linalg.yield %22 : f32
  } -> tensor<4x32xf32>
  %6 = tensor.empty() : tensor<4x8xf32>
  %7 = linalg.fill ins(%cst : f32) outs(%6 : tensor<4x8xf32>) -> tensor<4x8xf32>
  %8 = linalg.matmul ins(%5, %w2 : tensor<4x32xf32>, tensor<32x8xf32>) outs(%7 : tensor<4x8xf32>) -> tensor<4x8xf32>
  util.return %8 : tensor<4x8xf32>
}
