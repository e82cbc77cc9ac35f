// RUN: texflow-opt --pass-pipeline='builtin.module(texflow-raise-layout,texflow-verify-layout)' %s | FileCheck %s --check-prefix=RAISE
// RUN: texflow-opt --pass-pipeline='builtin.module(texflow-raise-layout)' %s | iree-opt --irdl-file=%irdl_dir/layout.irdl.mlir | FileCheck %s --check-prefix=RAISE
// RUN: texflow-opt --pass-pipeline='builtin.module(texflow-raise-layout,texflow-lower-layout,texflow-verify-lowered)' %s | FileCheck %s --check-prefix=LOWER

#id = affine_map<(d0, d1) -> (d0, d1)>
#tr = affine_map<(d0, d1) -> (d1, d0)>

// Five spellings of data movement become layout.transform ops.
// RAISE-LABEL: func.func @spellings
// RAISE: %[[P:.+]] = "layout.transform"(%arg0) {kind = "permute", permutation = array<i64: 1, 0>} : (tensor<2x12xf32>) -> tensor<12x2xf32>
// RAISE: %[[G:.+]] = "layout.transform"(%[[P]]) {kind = "permute", permutation = array<i64: 1, 0>} : (tensor<12x2xf32>) -> tensor<2x12xf32>
// RAISE: %[[E:.+]] = "layout.transform"(%[[G]]) {kind = "reshape"} : (tensor<2x12xf32>) -> tensor<2x4x3xf32>
// RAISE: %[[C:.+]] = "layout.transform"(%[[E]]) {kind = "reshape"} : (tensor<2x4x3xf32>) -> tensor<8x3xf32>
// RAISE: %[[K:.+]] = "layout.transform"(%[[C]]) {kind = "permute", permutation = array<i64: 0, 1>} : (tensor<8x3xf32>) -> tensor<8x3xf32>
// RAISE-NOT: linalg.transpose
// RAISE-NOT: linalg.generic
// RAISE-NOT: tensor.expand_shape
// RAISE: return %[[K]]
// LOWER-LABEL: func.func @spellings
// LOWER-NOT: layout.transform
// LOWER: linalg.transpose ins(%arg0 : tensor<2x12xf32>) {{.*}} permutation = [1, 0]
// LOWER: linalg.transpose ins(%{{.+}} : tensor<12x2xf32>) {{.*}} permutation = [1, 0]
// LOWER: tensor.expand_shape %{{.+}} {{\[}}[0], [1, 2]] output_shape [2, 4, 3]
// LOWER: tensor.collapse_shape %{{.+}} {{\[}}[0, 1], [2]]
// LOWER-NOT: layout.transform
func.func @spellings(%arg0: tensor<2x12xf32>) -> tensor<8x3xf32> {
  %e0 = tensor.empty() : tensor<12x2xf32>
  %t = linalg.transpose ins(%arg0 : tensor<2x12xf32>) outs(%e0 : tensor<12x2xf32>) permutation = [1, 0]
  %e1 = tensor.empty() : tensor<2x12xf32>
  %g = linalg.generic {indexing_maps = [#tr, #id], iterator_types = ["parallel", "parallel"]} ins(%t : tensor<12x2xf32>) outs(%e1 : tensor<2x12xf32>) {
  ^bb0(%in: f32, %out: f32):
    linalg.yield %in : f32
  } -> tensor<2x12xf32>
  %x = tensor.expand_shape %g [[0], [1, 2]] output_shape [2, 4, 3] : tensor<2x12xf32> into tensor<2x4x3xf32>
  %c = tensor.collapse_shape %x [[0, 1], [2]] : tensor<2x4x3xf32> into tensor<8x3xf32>
  %e2 = tensor.empty() : tensor<8x3xf32>
  %k = linalg.copy ins(%c : tensor<8x3xf32>) outs(%e2 : tensor<8x3xf32>) -> tensor<8x3xf32>
  return %k : tensor<8x3xf32>
}

// A reshape that is neither a pure collapse nor a pure expand lowers to both.
// LOWER-LABEL: func.func @general_reshape
// LOWER: %[[F:.+]] = tensor.collapse_shape %arg0 {{\[}}[0, 1]] : tensor<2x3xf32> into tensor<6xf32>
// LOWER: tensor.expand_shape %[[F]] {{\[}}[0, 1]] output_shape [3, 2] : tensor<6xf32> into tensor<3x2xf32>
func.func @general_reshape(%arg0: tensor<2x3xf32>) -> tensor<3x2xf32> {
  %shape = arith.constant dense<[3, 2]> : tensor<2xi64>
  %0 = tensor.reshape %arg0(%shape) : (tensor<2x3xf32>, tensor<2xi64>) -> tensor<3x2xf32>
  return %0 : tensor<3x2xf32>
}
