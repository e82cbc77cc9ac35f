// texflow-demote-f16{keep_f32=...}: the ops located at a kept ONNX node name stay in f32 (IREE
// 3.13's SPIR-V code generator rejects the f16 form of some kernels; the compiler names the
// nodes of the dispatches it rejected and compiles again with them kept). The kept
// matmul reads its f16 operands extended, its result is truncated for its f16 consumer; the
// init it shares with that consumer is given an f16 twin instead of a truncation; the relu
// (another node) computes in f16.

// RUN: texflow-opt --pass-pipeline='builtin.module(texflow-demote-f16{keep_f32=proj})' --texflow-statistics %s 2>&1 | FileCheck %s
// RUN: texflow-opt --pass-pipeline='builtin.module(texflow-demote-f16)' %s | FileCheck %s --check-prefix=ALL

// The kept node's constant, init, fill and matmul.
// CHECK: texflow-demote-f16: 4 ops kept in f32
// CHECK-LABEL: util.func public @main
// CHECK: arith.constant 0.000000e+00 : f32
// CHECK: %[[W:.*]] = arith.constant dense<{{.*}}> : tensor<8x2xf16>
// CHECK: %[[X:.*]] = hal.tensor.import %arg0 "input0" : !hal.buffer_view -> tensor<4x8xf32>
// CHECK: %[[XH:.*]] = linalg.generic {{.*}} ins(%[[X]] : tensor<4x8xf32>) outs(%{{.*}} : tensor<4x8xf16>)
// CHECK: %[[E:.*]] = tensor.empty() : tensor<4x2xf32>
// CHECK: %[[E16:.*]] = tensor.empty() : tensor<4x2xf16>
// CHECK: %[[FILL:.*]] = linalg.fill ins(%{{.*}} : f32) outs(%[[E]] : tensor<4x2xf32>)
// CHECK: %[[X32:.*]] = linalg.generic {{.*}} ins(%[[XH]] : tensor<4x8xf16>) outs(%{{.*}} : tensor<4x8xf32>)
// CHECK-NEXT: ^bb0(%{{.*}}: f16, %{{.*}}: f32):
// CHECK-NEXT: arith.extf
// CHECK: %[[W32:.*]] = linalg.generic {{.*}} ins(%[[W]] : tensor<8x2xf16>) outs(%{{.*}} : tensor<8x2xf32>)
// CHECK: %[[M:.*]] = linalg.matmul ins(%[[X32]], %[[W32]] : tensor<4x8xf32>, tensor<8x2xf32>) outs(%[[FILL]] : tensor<4x2xf32>) -> tensor<4x2xf32>
// CHECK: %[[MH:.*]] = linalg.generic {{.*}} ins(%[[M]] : tensor<4x2xf32>) outs(%{{.*}} : tensor<4x2xf16>)
// CHECK-NEXT: ^bb0(%{{.*}}: f32, %{{.*}}: f16):
// CHECK-NEXT: arith.truncf
// CHECK: %[[R:.*]] = linalg.generic {{.*}} ins(%[[MH]] : tensor<4x2xf16>) outs(%[[E16]] : tensor<4x2xf16>)
// CHECK-NEXT: ^bb0(%{{.*}}: f16, %{{.*}}: f16):
// CHECK: arith.maximumf %{{.*}}, %{{.*}} : f16
// CHECK: linalg.generic {{.*}} ins(%[[R]] : tensor<4x2xf16>) outs(%{{.*}} : tensor<4x2xf32>)
// CHECK: hal.tensor.export

// Without keep_f32 every op is f16.
// ALL: linalg.matmul ins(%{{.*}}, %{{.*}} : tensor<4x8xf16>, tensor<8x2xf16>) outs(%{{.*}} : tensor<4x2xf16>)

util.func public @main(%arg0: !hal.buffer_view) -> !hal.buffer_view {
  %zero = arith.constant 0.0 : f32 loc("proj")
  %w = arith.constant dense<[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0], [0.5, 0.25], [1.5, 2.5], [-1.0, -2.0], [0.125, 3.0]]> : tensor<8x2xf32> loc("proj_weight")
  %x = hal.tensor.import %arg0 "input0" : !hal.buffer_view -> tensor<4x8xf32>
  %e = tensor.empty() : tensor<4x2xf32> loc("proj")
  %f = linalg.fill ins(%zero : f32) outs(%e : tensor<4x2xf32>) -> tensor<4x2xf32> loc("proj")
  %m = linalg.matmul ins(%x, %w : tensor<4x8xf32>, tensor<8x2xf32>) outs(%f : tensor<4x2xf32>) -> tensor<4x2xf32> loc("proj")
  %r = linalg.generic {indexing_maps = [affine_map<(i, j) -> (i, j)>, affine_map<(i, j) -> (i, j)>], iterator_types = ["parallel", "parallel"]} ins(%m : tensor<4x2xf32>) outs(%e : tensor<4x2xf32>) {
  ^bb0(%in: f32, %out: f32):
    %c0 = arith.constant 0.0 : f32
    %y = arith.maximumf %in, %c0 : f32
    linalg.yield %y : f32
  } -> tensor<4x2xf32> loc("relu")
  %o = hal.tensor.export %r : tensor<4x2xf32> -> !hal.buffer_view
  util.return %o : !hal.buffer_view
}
