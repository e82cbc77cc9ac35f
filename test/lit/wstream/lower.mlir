// RUN: texflow-opt --pass-pipeline='builtin.module(texflow-wstream-lower,texflow-verify-lowered)' %s | FileCheck %s

// Lowering forwards each wait's weight to its users and erases every wstream
// op, so IREE (which crashes on unregistered ops) never sees the dialect.

// CHECK-LABEL: util.func public @f
// CHECK-NOT: wstream
// CHECK: %[[W:.*]] = arith.constant dense<5.000000e-01> : tensor<4x4xf32>
// CHECK-NOT: wstream
// CHECK: linalg.matmul ins(%arg0, %[[W]] :
// CHECK-NOT: wstream
// CHECK: util.return
util.func public @f(%x: tensor<4x4xf32>) -> tensor<4x4xf32> {
  "wstream.plan"() {budget = 4096 : i64, chunk_bytes = 64 : i64, compute_s = 1.0e-05 : f64, peak_bytes = 128 : i64, preloaded_bytes = 0 : i64, stall_bound_s = 0.0 : f64, stall_s = 0.0 : f64, status = "optimal", streamed_bytes = 64 : i64} : () -> ()
  %cst = arith.constant 0.000000e+00 : f32
  %w = arith.constant dense<0.5> : tensor<4x4xf32>
  %t = "wstream.load"() {bytes = 64 : i64, chunks = 1 : i64, group = 0 : i64, preload = false, schedule = array<i64: 0, 1, 0>} : () -> !wstream.token
  "wstream.stage"() {act_bytes = 128 : i64, capacity_bytes = 0 : i64, compute_s = 1.0e-05 : f64, id = 0 : i64, kind = "reusable"} : () -> ()
  %r = "wstream.wait"(%t, %w) {group = 0 : i64, stage = 0 : i64} : (!wstream.token, tensor<4x4xf32>) -> tensor<4x4xf32>
  %e = tensor.empty() : tensor<4x4xf32>
  %f = linalg.fill ins(%cst : f32) outs(%e : tensor<4x4xf32>) -> tensor<4x4xf32>
  %m = linalg.matmul ins(%x, %r : tensor<4x4xf32>, tensor<4x4xf32>) outs(%f : tensor<4x4xf32>) -> tensor<4x4xf32>
  "wstream.release"(%t) {group = 0 : i64, stage = 0 : i64} : (!wstream.token) -> ()
  util.return %m : tensor<4x4xf32>
}
