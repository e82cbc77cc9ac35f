// texflow-demote-f16: the model computes in f16 while callers keep f32 arrays. Constants are
// demoted at compile time, every value inside the function becomes f16, the imported input is
// truncated once and the exported output extended once; a max reduction keeps an f32
// accumulator (each f16 element extended before the comparison, the result truncated back),
// because LLVM lowers an f16 vector max-reduction on x86-64 without AVX512-FP16 to libm calls
// IREE's linker does not provide.

// RUN: texflow-opt --pass-pipeline='builtin.module(texflow-demote-f16)' --texflow-statistics %s 2>&1 | FileCheck %s

// CHECK: texflow-demote-f16: 1 constants demoted
// CHECK: texflow-demote-f16: 1 inputs truncated to f16
// CHECK: texflow-demote-f16: 1 outputs extended to f32
// CHECK: texflow-demote-f16: 1 max/min reductions accumulated in f32
// CHECK-LABEL: util.func public @main
// CHECK: %[[X:.*]] = hal.tensor.import %arg0 "input0" : !hal.buffer_view -> tensor<2x3xf32>
// CHECK: %[[XH:.*]] = linalg.generic {{.*}} ins(%[[X]] : tensor<2x3xf32>) outs(%{{.*}} : tensor<2x3xf16>)
// CHECK-NEXT: ^bb0(%{{.*}}: f32, %{{.*}}: f16):
// CHECK-NEXT: arith.truncf %{{.*}} : f32 to f16
// CHECK: %[[W:.*]] = arith.constant dense<{{\[\[}}1.000000e+00, 2.000000e+00, 3.000000e+00], [4.000000e+00, 5.000000e+00, 5.000000e-01]]> : tensor<2x3xf16>
// CHECK: %[[SUM:.*]] = linalg.generic {{.*}} ins(%[[XH]], %[[W]] : tensor<2x3xf16>, tensor<2x3xf16>) outs(%{{.*}} : tensor<2x3xf16>)
// CHECK-NEXT: ^bb0(%{{.*}}: f16, %{{.*}}: f16, %{{.*}}: f16):
// CHECK-NEXT: arith.addf %{{.*}}, %{{.*}} : f16
// The -inf init is an f16 constant (0xFC00), extended into the f32 accumulator.
// CHECK: arith.constant 0xFC00 : f16
// CHECK: %[[FILL:.*]] = linalg.fill ins(%{{.*}} : f16) outs(%{{.*}} : tensor<2xf16>)
// CHECK: %[[ACC:.*]] = linalg.generic {{.*}} ins(%[[FILL]] : tensor<2xf16>) outs(%{{.*}} : tensor<2xf32>)
// CHECK-NEXT: ^bb0
// CHECK-NEXT: arith.extf %{{.*}} : f16 to f32
// CHECK: %[[MAX:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "reduction"]} ins(%[[SUM]] : tensor<2x3xf16>) outs(%[[ACC]] : tensor<2xf32>)
// CHECK-NEXT: ^bb0(%{{.*}}: f16, %{{.*}}: f32):
// CHECK-NEXT: %[[E:.*]] = arith.extf %{{.*}} : f16 to f32
// CHECK-NEXT: arith.maximumf %[[E]], %{{.*}} : f32
// CHECK: %[[MH:.*]] = linalg.generic {{.*}} ins(%[[MAX]] : tensor<2xf32>) outs(%{{.*}} : tensor<2xf16>)
// CHECK-NEXT: ^bb0
// CHECK-NEXT: arith.truncf %{{.*}} : f32 to f16
// CHECK: %[[OUT:.*]] = linalg.generic {{.*}} ins(%[[MH]] : tensor<2xf16>) outs(%{{.*}} : tensor<2xf32>)
// CHECK-NEXT: ^bb0
// CHECK-NEXT: arith.extf %{{.*}} : f16 to f32
// CHECK: hal.tensor.export %[[OUT]] "output0" : tensor<2xf32> -> !hal.buffer_view

#id = affine_map<(d0, d1) -> (d0, d1)>
#row = affine_map<(d0, d1) -> (d0)>
util.func public @main(%arg0: !hal.buffer_view) -> !hal.buffer_view {
  %x = hal.tensor.import %arg0 "input0" : !hal.buffer_view -> tensor<2x3xf32>
  %w = arith.constant dense<[[1.0, 2.0, 3.0], [4.0, 5.0, 0.5]]> : tensor<2x3xf32>
  %e = tensor.empty() : tensor<2x3xf32>
  %sum = linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%x, %w : tensor<2x3xf32>, tensor<2x3xf32>) outs(%e : tensor<2x3xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %s = arith.addf %a, %b : f32
    linalg.yield %s : f32
  } -> tensor<2x3xf32>
  %ninf = arith.constant 0xFF800000 : f32
  %e2 = tensor.empty() : tensor<2xf32>
  %init = linalg.fill ins(%ninf : f32) outs(%e2 : tensor<2xf32>) -> tensor<2xf32>
  %max = linalg.generic {indexing_maps = [#id, #row], iterator_types = ["parallel", "reduction"]}
      ins(%sum : tensor<2x3xf32>) outs(%init : tensor<2xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %m = arith.maximumf %a, %acc : f32
    linalg.yield %m : f32
  } -> tensor<2xf32>
  %r = hal.tensor.export %max "output0" : tensor<2xf32> -> !hal.buffer_view
  util.return %r : !hal.buffer_view
}
