// RUN: texflow-opt --pass-pipeline='builtin.module(texflow-fold-weight-math)' --split-input-file %s | FileCheck %s

// Weight standardization as the ONNX importer writes NF-ResNet's (mean over the filter, centred,
// scaled): computed at compile time; the convolution reads a constant filter, and the
// arithmetic and the raw weight are gone.  Filter [[1, 3], [2, 6]] (2 filters of 2 taps):
// means 2 and 4, so the standardized filter is (w - mean) * 0.5 = [[-0.5, 0.5], [-1, 1]].
// CHECK-LABEL: func.func @standardize
// CHECK-NOT:   dense<{{\[}}[1.000000e+00, 3.000000e+00]
// CHECK:       %[[F:.+]] = arith.constant dense<{{\[}}{{\[}}{{\[}}[-5.000000e-01, 5.000000e-01]]], {{\[}}{{\[}}[-1.000000e+00, 1.000000e+00]]]]> : tensor<2x1x1x2xf32>
// CHECK-NOT:   linalg.generic
// CHECK:       linalg.conv_2d_nchw_fchw {{.*}}ins(%arg0, %[[F]] :
#id = affine_map<(d0, d1) -> (d0, d1)>
#row = affine_map<(d0, d1) -> (d0)>
func.func @standardize(%x: tensor<1x1x4x4xf32>) -> tensor<1x2x4x3xf32> {
  %w = arith.constant dense<[[1.0, 3.0], [2.0, 6.0]]> : tensor<2x2xf32>
  %zero = arith.constant 0.0 : f32
  %half = arith.constant 0.5 : f32
  %two = arith.constant 2.0 : f32
  %e1 = tensor.empty() : tensor<2xf32>
  %z1 = linalg.fill ins(%zero : f32) outs(%e1 : tensor<2xf32>) -> tensor<2xf32>
  %sum = linalg.generic {indexing_maps = [#id, #row], iterator_types = ["parallel", "reduction"]}
      ins(%w : tensor<2x2xf32>) outs(%z1 : tensor<2xf32>) {
  ^bb0(%a: f32, %o: f32):
    %s = arith.addf %a, %o : f32
    linalg.yield %s : f32
  } -> tensor<2xf32>
  %e2 = tensor.empty() : tensor<2x2xf32>
  %std = linalg.generic {indexing_maps = [#id, #row, #id], iterator_types = ["parallel", "parallel"]}
      ins(%w, %sum : tensor<2x2xf32>, tensor<2xf32>) outs(%e2 : tensor<2x2xf32>) {
  ^bb0(%a: f32, %s: f32, %o: f32):
    %m = arith.divf %s, %two : f32
    %c = arith.subf %a, %m : f32
    %r = arith.mulf %c, %half : f32
    linalg.yield %r : f32
  } -> tensor<2x2xf32>
  %f = tensor.expand_shape %std [[0], [1, 2, 3]] output_shape [2, 1, 1, 2] : tensor<2x2xf32> into tensor<2x1x1x2xf32>
  %e3 = tensor.empty() : tensor<1x2x4x3xf32>
  %i = linalg.fill ins(%zero : f32) outs(%e3 : tensor<1x2x4x3xf32>) -> tensor<1x2x4x3xf32>
  %y = linalg.conv_2d_nchw_fchw {dilations = dense<1> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>}
      ins(%x, %f : tensor<1x1x4x4xf32>, tensor<2x1x1x2xf32>) outs(%i : tensor<1x2x4x3xf32>) -> tensor<1x2x4x3xf32>
  return %y : tensor<1x2x4x3xf32>
}

// -----

// A broadcast of a constant is larger than the constant: left to the op that reads it; an
// expression that reads a function argument is not constant: left.
// CHECK-LABEL: func.func @left
// CHECK:       linalg.broadcast
// CHECK:       linalg.generic
// CHECK-SAME:    ins(%arg0, %{{.+}} :
#id3 = affine_map<(d0, d1) -> (d0, d1)>
func.func @left(%a: tensor<4x3xf32>) -> tensor<4x3xf32> {
  %b = arith.constant dense<[1.0, 2.0, 3.0]> : tensor<3xf32>
  %e = tensor.empty() : tensor<4x3xf32>
  %bb = linalg.broadcast ins(%b : tensor<3xf32>) outs(%e : tensor<4x3xf32>) dimensions = [0]
  %r = linalg.generic {indexing_maps = [#id3, #id3, #id3], iterator_types = ["parallel", "parallel"]}
      ins(%a, %bb : tensor<4x3xf32>, tensor<4x3xf32>) outs(%e : tensor<4x3xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %s = arith.addf %x, %y : f32
    linalg.yield %s : f32
  } -> tensor<4x3xf32>
  return %r : tensor<4x3xf32>
}
