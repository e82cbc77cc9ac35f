// One 3x3 convolution the size of the calibration case (1x64x56x56, 64 filters), between a
// function argument and the return: both stay NCHW, so NHWC costs a conversion on each side.
// Hand-made cost models (Inputs/cost-*.json): the convolution takes 2 ms in NCHW, 1 ms in NHWC
// and 1.5 ms in NC4HW4.  With cheap conversions (0.1 ms per 0.8 MB: 0.05 + 0.05 ms) NHWC wins,
// 1.1 < 2 ms; with dear ones (1 ms per 0.8 MB: 0.54 + 0.5 ms) NCHW stays, 2 < 2.04 ms.

// RUN: texflow-opt --pass-pipeline='builtin.module(texflow-select-layout{cost-model=%S/../Inputs/cost-cheap-moves.json})' %s | FileCheck %s --check-prefix=CHEAP
// RUN: texflow-opt --pass-pipeline='builtin.module(texflow-select-layout{cost-model=%S/../Inputs/cost-dear-moves.json})' %s | FileCheck %s --check-prefix=DEAR
// RUN: texflow-opt --pass-pipeline='builtin.module(texflow-select-layout{cost-model=%S/../Inputs/cost-cheap-moves.json layouts=nchw,nc4hw4})' %s | FileCheck %s --check-prefix=PACKED
// RUN: texflow-opt --pass-pipeline='builtin.module(texflow-select-layout{cost-model=%S/../Inputs/cost-cheap-moves.json solver=greedy})' %s | FileCheck %s --check-prefix=CHEAP

// CHEAP: module attributes {texflow.layout_selection = "{{.*}}\22nhwc\22: 1
// CHEAP-LABEL: func.func @conv
// CHEAP-NOT: linalg.conv_2d_nchw_fchw
// CHEAP: linalg.transpose ins(%arg0 : tensor<1x64x58x58xf32>) outs({{.*}} : tensor<1x58x58x64xf32>) permutation = [0, 2, 3, 1]
// CHEAP: arith.constant {{.*}} : tensor<3x3x64x64xf32>
// CHEAP: linalg.conv_2d_nhwc_hwcf {{.*}}layout.physical = #layout.physical<array<i64: 0, 2, 3, 1>, array<i64>>
// CHEAP: linalg.transpose {{.*}} permutation = [0, 3, 1, 2]
// CHEAP-NOT: linalg.conv_2d_nchw_fchw

// DEAR: module attributes {texflow.layout_selection = "{{.*}}\22convolutions\22: {\22nc4hw4\22: 0, \22nchw\22: 1, \22nhwc\22: 0}, \22estimated_ms\22: 2.0,
// DEAR-LABEL: func.func @conv
// DEAR-NOT: linalg.transpose
// DEAR: linalg.conv_2d_nchw_fchw
// DEAR-NOT: linalg.transpose

// NC4HW4 (1.5 ms + 0.1 ms of packing) also beats NCHW when NHWC is not allowed: the input is
// packed (linalg.pack), the filter packed at compile time on both channel dims, the result unpacked.
// PACKED-LABEL: func.func @conv
// PACKED: linalg.pack %arg0 inner_dims_pos = [1] inner_tiles = [4] into {{.*}} : tensor<1x64x58x58xf32> -> tensor<1x16x58x58x4xf32>
// PACKED: arith.constant {{.*}} : tensor<16x16x3x3x4x4xf32>
// PACKED: linalg.generic {{.*}} ins({{.*}} : tensor<1x16x58x58x4xf32>, tensor<16x16x3x3x4x4xf32>) outs({{.*}} : tensor<1x16x56x56x4xf32>) attrs = {layout.physical = #layout.physical<array<i64: 0, 1, 2, 3>, array<i64: 1, 4>>}
// PACKED: linalg.unpack {{.*}} inner_dims_pos = [1] inner_tiles = [4] into {{.*}} : tensor<1x16x56x56x4xf32> -> tensor<1x64x56x56xf32>

func.func @conv(%x: tensor<1x64x58x58xf32>) -> tensor<1x64x56x56xf32> {
  %w = arith.constant dense<0.5> : tensor<64x64x3x3xf32>
  %z = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<1x64x56x56xf32>
  %f = linalg.fill ins(%z : f32) outs(%e : tensor<1x64x56x56xf32>) -> tensor<1x64x56x56xf32>
  %c = linalg.conv_2d_nchw_fchw {dilations = dense<1> : vector<2xi64>, strides = dense<1> : vector<2xi64>}
       ins(%x, %w : tensor<1x64x58x58xf32>, tensor<64x64x3x3xf32>) outs(%f : tensor<1x64x56x56xf32>) -> tensor<1x64x56x56xf32>
  return %c : tensor<1x64x56x56xf32>
}
