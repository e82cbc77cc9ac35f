// Two convolutions with a ReLU between them.  With the hand-made "dear moves" model a single
// convolution stays NCHW (single-conv.mlir: converting in and out costs 1.04 ms against the
// 1 ms NHWC saves), but two convolutions save 2 ms for the same two conversions, so the whole
// region goes NHWC: one transpose in, one out, none between (the ReLU is rebuilt in NHWC).
// The greedy rule, deciding backwards one tensor at a time, would need both convolutions at
// once to see that; its local improvement gets there too.

// RUN: texflow-opt --pass-pipeline='builtin.module(texflow-select-layout{cost-model=%S/../Inputs/cost-dear-moves.json})' %s | FileCheck %s
// RUN: texflow-opt --pass-pipeline='builtin.module(texflow-select-layout{cost-model=%S/../Inputs/cost-dear-moves.json solver=greedy})' %s | FileCheck %s

// CHECK-LABEL: func.func @chain
// CHECK-COUNT-1: linalg.transpose {{.*}} permutation = [0, 2, 3, 1]
// CHECK: linalg.conv_2d_nhwc_hwcf
// CHECK-NOT: linalg.transpose
// CHECK: linalg.generic {{.*}} ins({{.*}} : tensor<1x56x56x64xf32>) {{.*}}layout.physical
// CHECK-NOT: linalg.transpose
// CHECK: linalg.conv_2d_nhwc_hwcf
// CHECK: linalg.transpose {{.*}} permutation = [0, 3, 1, 2]
// CHECK-NOT: linalg.transpose

#id = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
func.func @chain(%x: tensor<1x64x58x58xf32>) -> tensor<1x64x54x54xf32> {
  %w = arith.constant dense<0.5> : tensor<64x64x3x3xf32>
  %z = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<1x64x56x56xf32>
  %f = linalg.fill ins(%z : f32) outs(%e : tensor<1x64x56x56xf32>) -> tensor<1x64x56x56xf32>
  %c = linalg.conv_2d_nchw_fchw {dilations = dense<1> : vector<2xi64>, strides = dense<1> : vector<2xi64>}
       ins(%x, %w : tensor<1x64x58x58xf32>, tensor<64x64x3x3xf32>) outs(%f : tensor<1x64x56x56xf32>) -> tensor<1x64x56x56xf32>
  %r = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
       ins(%c : tensor<1x64x56x56xf32>) outs(%e : tensor<1x64x56x56xf32>) {
  ^bb0(%a: f32, %o: f32):
    %m = arith.maximumf %a, %z : f32
    linalg.yield %m : f32
  } -> tensor<1x64x56x56xf32>
  %e2 = tensor.empty() : tensor<1x64x54x54xf32>
  %f2 = linalg.fill ins(%z : f32) outs(%e2 : tensor<1x64x54x54xf32>) -> tensor<1x64x54x54xf32>
  %c2 = linalg.conv_2d_nchw_fchw {dilations = dense<1> : vector<2xi64>, strides = dense<1> : vector<2xi64>}
       ins(%r, %w : tensor<1x64x56x56xf32>, tensor<64x64x3x3xf32>) outs(%f2 : tensor<1x64x54x54xf32>) -> tensor<1x64x54x54xf32>
  return %c2 : tensor<1x64x54x54xf32>
}
