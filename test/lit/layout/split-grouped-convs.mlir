// RUN: texflow-opt --pass-pipeline='builtin.module(texflow-split-grouped-convs)' --split-input-file %s | FileCheck %s
// RUN: texflow-opt --pass-pipeline='builtin.module(texflow-split-grouped-convs{max-groups=1})' --split-input-file %s | FileCheck %s --check-prefix=CAP

// A 2-group 3x3 stride-2 convolution as the ONNX importer writes it (channels expanded into
// groups around a linalg.conv_2d_ngchw_gfchw): one ordinary convolution per group on its channel
// slice, its filter slice cut at compile time and a zero init of its own, its result inserted
// into the group's slice of a fresh tensor.
// CHECK-LABEL: func.func @grouped
// CHECK-NOT:   tensor<2x2x1x1x2xf32>
// CHECK:       linalg.fill {{.*}}tensor<1x2x2x3x1xf32>
// CHECK:       %[[D:.+]] = tensor.empty() : tensor<1x2x2x3x1xf32>
// CHECK:       %[[X0:.+]] = tensor.extract_slice %[[X:.+]][0, 0, 0, 0, 0] [1, 1, 1, 5, 2] [1, 1, 1, 1, 1] : tensor<1x2x1x5x2xf32> to tensor<1x1x5x2xf32>
// CHECK:       %[[O0:.+]] = linalg.fill ins(%{{.+}} : f32) outs(%{{.+}} : tensor<1x2x3x1xf32>)
// CHECK:       %[[W0:.+]] = arith.constant dense<{{\[}}{{\[}}{{\[}}[0.000000e+00, 1.000000e+00]]], {{\[}}{{\[}}[2.000000e+00, 3.000000e+00]]]]> : tensor<2x1x1x2xf32>
// CHECK:       %[[C0:.+]] = linalg.conv_2d_nchw_fchw {dilations = dense<1> : tensor<2xi64>, strides = dense<2> : tensor<2xi64>} ins(%[[X0]], %[[W0]] : tensor<1x1x5x2xf32>, tensor<2x1x1x2xf32>) outs(%[[O0]] : tensor<1x2x3x1xf32>)
// CHECK:       %[[R0:.+]] = tensor.insert_slice %[[C0]] into %[[D]][0, 0, 0, 0, 0] [1, 1, 2, 3, 1] [1, 1, 1, 1, 1]
// CHECK:       %[[X1:.+]] = tensor.extract_slice %[[X]][0, 1, 0, 0, 0] [1, 1, 1, 5, 2]
// CHECK:       %[[O1:.+]] = linalg.fill
// CHECK:       %[[W1:.+]] = arith.constant dense<{{\[}}{{\[}}{{\[}}[4.000000e+00, 5.000000e+00]]], {{\[}}{{\[}}[6.000000e+00, 7.000000e+00]]]]> : tensor<2x1x1x2xf32>
// CHECK:       %[[C1:.+]] = linalg.conv_2d_nchw_fchw {{.*}}ins(%[[X1]], %[[W1]] : {{.*}}) outs(%[[O1]] : tensor<1x2x3x1xf32>)
// CHECK:       %[[R1:.+]] = tensor.insert_slice %[[C1]] into %[[R0]][0, 1, 0, 0, 0] [1, 1, 2, 3, 1]
// CHECK-NOT:   conv_2d_ngchw_gfchw
// CHECK:       return %[[R1]]
// With at most one group allowed it is left as it was.
// CAP-LABEL:   func.func @grouped
// CAP:         linalg.conv_2d_ngchw_gfchw
func.func @grouped(%x: tensor<1x2x1x5x2xf32>) -> tensor<1x2x2x3x1xf32> {
  %w = arith.constant dense<[[[[[0.0, 1.0]]], [[[2.0, 3.0]]]], [[[[4.0, 5.0]]], [[[6.0, 7.0]]]]]> : tensor<2x2x1x1x2xf32>
  %z = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<1x2x2x3x1xf32>
  %i = linalg.fill ins(%z : f32) outs(%e : tensor<1x2x2x3x1xf32>) -> tensor<1x2x2x3x1xf32>
  %r = linalg.conv_2d_ngchw_gfchw {dilations = dense<1> : tensor<2xi64>, strides = dense<2> : tensor<2xi64>}
      ins(%x, %w : tensor<1x2x1x5x2xf32>, tensor<2x2x1x1x2xf32>) outs(%i : tensor<1x2x2x3x1xf32>) -> tensor<1x2x2x3x1xf32>
  return %r : tensor<1x2x2x3x1xf32>
}

// -----

// A filter that is not a constant (a function argument) cannot be sliced at compile time: left.
// CHECK-LABEL: func.func @computed_filter
// CHECK:       linalg.conv_2d_ngchw_gfchw
// CHECK-NOT:   linalg.conv_2d_nchw_fchw
func.func @computed_filter(%x: tensor<1x2x4x6x6xf32>, %w: tensor<2x4x4x3x3xf32>) -> tensor<1x2x4x4x4xf32> {
  %z = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<1x2x4x4x4xf32>
  %i = linalg.fill ins(%z : f32) outs(%e : tensor<1x2x4x4x4xf32>) -> tensor<1x2x4x4x4xf32>
  %r = linalg.conv_2d_ngchw_gfchw {dilations = dense<1> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>}
      ins(%x, %w : tensor<1x2x4x6x6xf32>, tensor<2x4x4x3x3xf32>) outs(%i : tensor<1x2x4x4x4xf32>) -> tensor<1x2x4x4x4xf32>
  return %r : tensor<1x2x4x4x4xf32>
}

// -----

// The importer's bias init (a broadcast of the bias over N x G*F x OH x OW, expanded to groups):
// each group's convolution starts from a broadcast of its own slice of the bias.
// CHECK-LABEL: func.func @bias
// CHECK:       %[[B0:.+]] = arith.constant dense<[1.000000e+00, 2.000000e+00]> : tensor<2xf32>
// CHECK:       %[[I0:.+]] = linalg.broadcast ins(%[[B0]] : tensor<2xf32>) outs(%{{.+}} : tensor<1x2x4x4xf32>) dimensions = [0, 2, 3]
// CHECK:       linalg.conv_2d_nchw_fchw {{.*}}outs(%[[I0]] : tensor<1x2x4x4xf32>)
// CHECK:       %[[B1:.+]] = arith.constant dense<[3.000000e+00, 4.000000e+00]> : tensor<2xf32>
// CHECK:       %[[I1:.+]] = linalg.broadcast ins(%[[B1]] : tensor<2xf32>)
// CHECK:       linalg.conv_2d_nchw_fchw {{.*}}outs(%[[I1]] : tensor<1x2x4x4xf32>)
func.func @bias(%x: tensor<1x2x2x6x6xf32>) -> tensor<1x2x2x4x4xf32> {
  %w = arith.constant dense<0.5> : tensor<2x2x2x3x3xf32>
  %b = arith.constant dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32>
  %e = tensor.empty() : tensor<1x4x4x4xf32>
  %bb = linalg.broadcast ins(%b : tensor<4xf32>) outs(%e : tensor<1x4x4x4xf32>) dimensions = [0, 2, 3]
  %i = tensor.expand_shape %bb [[0], [1, 2], [3], [4]] output_shape [1, 2, 2, 4, 4] : tensor<1x4x4x4xf32> into tensor<1x2x2x4x4xf32>
  %r = linalg.conv_2d_ngchw_gfchw {dilations = dense<1> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>}
      ins(%x, %w : tensor<1x2x2x6x6xf32>, tensor<2x2x2x3x3xf32>) outs(%i : tensor<1x2x2x4x4xf32>) -> tensor<1x2x2x4x4xf32>
  return %r : tensor<1x2x2x4x4xf32>
}
