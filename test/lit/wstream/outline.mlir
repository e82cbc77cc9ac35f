// RUN: texflow-opt --pass-pipeline='builtin.module(texflow-wstream-plan{memory-budget=24KiB chunk-bytes=256},texflow-wstream-outline{segment-bytes=1},texflow-verify-lowered)' %s | FileCheck %s
// RUN: texflow-opt --pass-pipeline='builtin.module(texflow-wstream-plan{memory-budget=24KiB chunk-bytes=256},texflow-wstream-outline{segment-bytes=1})' %s | iree-opt --irdl-file=%irdl_dir/wstream.irdl.mlir | FileCheck %s --check-prefix=IREE

// texflow-wstream-outline cuts the planned function into segments that take
// their weights as arguments (the runtime loads them), and clones what
// computes nothing (constants, tensor.empty, fills) into each segment.
// The weights are gone from the module; the program is described as JSON.
// CHECK: module attributes {texflow.wstream.program = "{{.*}}texflow.wstream.program/1
// CHECK-NOT: util.func public @f(
// CHECK-LABEL: util.func public @f$seg0(
// CHECK-SAME: %[[X:.*]]: tensor<4x16xf32>, %[[W1:.*]]: tensor<16x64xf32>) -> tensor<4x64xf32>
// CHECK-SAME: texflow.wstream.program =
// CHECK-NOT: arith.constant dense
// CHECK: %[[E:.*]] = tensor.empty() : tensor<4x64xf32>
// CHECK: %[[F:.*]] = linalg.fill {{.*}} outs(%[[E]]
// CHECK: %[[M1:.*]] = linalg.matmul ins(%[[X]], %[[W1]] {{.*}} outs(%[[F]]
// CHECK: util.return %[[M1]] : tensor<4x64xf32>
// The first streamed weight starts a segment: the runtime loads it meanwhile.
// CHECK-LABEL: util.func public @f$seg1(
// CHECK-SAME: %[[A1:.*]]: tensor<4x64xf32>, %[[W2:.*]]: tensor<64x64xf32>) -> tensor<4x64xf32>
// CHECK-SAME: texflow.wstream.digest =
// CHECK: tensor.empty() : tensor<4x64xf32>
// CHECK: linalg.matmul ins(%[[A1]], %[[W2]]
// CHECK-LABEL: util.func public @f$seg2(
// CHECK-SAME: %[[A2:.*]]: tensor<4x64xf32>, %[[W3:.*]]: tensor<64x16xf32>) -> tensor<4x16xf32>
// CHECK-NOT: arith.constant dense
// CHECK: linalg.matmul ins(%[[A2]], %[[W3]]
// CHECK-NOT: wstream.
// CHECK-NOT: util.func public @f(
// IREE: util.func public @f$seg0
// IREE: util.func public @f$seg1
// IREE: util.func public @f$seg2
util.func public @f(%x: tensor<4x16xf32>) -> tensor<4x16xf32> {
  %cst = arith.constant 0.000000e+00 : f32
  %w1 = arith.constant dense<0.5> : tensor<16x64xf32>
  %w2 = arith.constant dense<0.25> : tensor<64x64xf32>
  %w3 = arith.constant dense<0.125> : tensor<64x16xf32>
  %e1 = tensor.empty() : tensor<4x64xf32>
  %f1 = linalg.fill ins(%cst : f32) outs(%e1 : tensor<4x64xf32>) -> tensor<4x64xf32>
  %1 = linalg.matmul ins(%x, %w1 : tensor<4x16xf32>, tensor<16x64xf32>) outs(%f1 : tensor<4x64xf32>) -> tensor<4x64xf32>
  %2 = linalg.matmul ins(%1, %w2 : tensor<4x64xf32>, tensor<64x64xf32>) outs(%f1 : tensor<4x64xf32>) -> tensor<4x64xf32>
  %e3 = tensor.empty() : tensor<4x16xf32>
  %f3 = linalg.fill ins(%cst : f32) outs(%e3 : tensor<4x16xf32>) -> tensor<4x16xf32>
  %3 = linalg.matmul ins(%2, %w3 : tensor<4x64xf32>, tensor<64x16xf32>) outs(%f3 : tensor<4x16xf32>) -> tensor<4x16xf32>
  util.return %3 : tensor<4x16xf32>
}
