// RUN: texflow-opt --pass-pipeline='builtin.module(texflow-classify-quadrants,texflow-verify-layout)' %s | FileCheck %s
// RUN: texflow-opt --pass-pipeline='builtin.module(texflow-classify-quadrants)' %s | iree-opt --irdl-file=%irdl_dir/layout.irdl.mlir | FileCheck %s

#id = affine_map<(d0, d1) -> (d0, d1)>
#tr = affine_map<(d0, d1) -> (d1, d0)>
#row = affine_map<(d0, d1) -> (d0)>
#col = affine_map<(d0, d1) -> (d1)>

// CHECK-LABEL: func.func @quadrants
func.func @quadrants(%a: tensor<4x4xf32>, %b: tensor<4x4xf32>, %v: tensor<4xf32>, %i: tensor<1x4x6x6xf32>, %w: tensor<2x4x3x3xf32>) -> () {
  %e = tensor.empty() : tensor<4x4xf32>
  %z = arith.constant 0.0 : f32
  // ILD&Var: contractions, convolutions, reductions (softmax/layernorm parts)
  // CHECK: linalg.matmul {layout.quadrant = #layout.quadrant<"ild_var">}
  %m = linalg.matmul ins(%a, %b : tensor<4x4xf32>, tensor<4x4xf32>) outs(%e : tensor<4x4xf32>) -> tensor<4x4xf32>
  %ce = tensor.empty() : tensor<1x2x4x4xf32>
  // CHECK: linalg.conv_2d_nchw_fchw {{.*}}layout.quadrant = #layout.quadrant<"ild_var">
  %c = linalg.conv_2d_nchw_fchw ins(%i, %w : tensor<1x4x6x6xf32>, tensor<2x4x3x3xf32>) outs(%ce : tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
  %re = tensor.empty() : tensor<4xf32>
  // CHECK: linalg.generic {{.*}}layout.quadrant = #layout.quadrant<"ild_var">
  %r = linalg.generic {indexing_maps = [#id, #row], iterator_types = ["parallel", "reduction"]} ins(%a : tensor<4x4xf32>) outs(%re : tensor<4xf32>) {
  ^bb0(%x: f32, %acc: f32):
    %s = arith.addf %x, %acc : f32
    linalg.yield %s : f32
  } -> tensor<4xf32>
  // ILI&Var: elementwise with operands in the output's order (broadcast allowed)
  // CHECK: linalg.generic {{.*}}layout.quadrant = #layout.quadrant<"ili_var">
  %add = linalg.generic {indexing_maps = [#id, #col, #id], iterator_types = ["parallel", "parallel"]} ins(%a, %v : tensor<4x4xf32>, tensor<4xf32>) outs(%e : tensor<4x4xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %s = arith.addf %x, %y : f32
    linalg.yield %s : f32
  } -> tensor<4x4xf32>
  // The same add with one operand read transposed depends on that operand's
  // layout: it changes quadrant to ILD&Var.
  // CHECK: linalg.generic {{.*}}layout.quadrant = #layout.quadrant<"ild_var">
  %addt = linalg.generic {indexing_maps = [#id, #tr, #id], iterator_types = ["parallel", "parallel"]} ins(%a, %b : tensor<4x4xf32>, tensor<4x4xf32>) outs(%e : tensor<4x4xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %s = arith.addf %x, %y : f32
    linalg.yield %s : f32
  } -> tensor<4x4xf32>
  // ILD&Fixed: transposes and reshapes in any spelling
  // CHECK: linalg.transpose {{.*}}layout.quadrant = #layout.quadrant<"ild_fixed">
  %t = linalg.transpose ins(%a : tensor<4x4xf32>) outs(%e : tensor<4x4xf32>) permutation = [1, 0]
  // CHECK: linalg.generic {{.*}}layout.quadrant = #layout.quadrant<"ild_fixed">
  %tg = linalg.generic {indexing_maps = [#tr, #id], iterator_types = ["parallel", "parallel"]} ins(%a : tensor<4x4xf32>) outs(%e : tensor<4x4xf32>) {
  ^bb0(%x: f32, %o: f32):
    linalg.yield %x : f32
  } -> tensor<4x4xf32>
  // CHECK: tensor.collapse_shape {{.*}}layout.quadrant = #layout.quadrant<"ild_fixed">
  %f = tensor.collapse_shape %a [[0, 1]] : tensor<4x4xf32> into tensor<16xf32>
  // ILI&Fixed: slices and gathers
  // CHECK: tensor.extract_slice {{.*}}layout.quadrant = #layout.quadrant<"ili_fixed">
  %s = tensor.extract_slice %a[0, 0] [2, 4] [1, 1] : tensor<4x4xf32> to tensor<2x4xf32>
  // CHECK: linalg.generic {{.*}}layout.quadrant = #layout.quadrant<"ili_fixed">
  %gather = linalg.generic {indexing_maps = [#id], iterator_types = ["parallel", "parallel"]} outs(%e : tensor<4x4xf32>) {
  ^bb0(%o: f32):
    %i0 = linalg.index 0 : index
    %x = tensor.extract %v[%i0] : tensor<4xf32>
    linalg.yield %x : f32
  } -> tensor<4x4xf32>
  // No quadrant: non-compute ops
  // CHECK: linalg.fill ins
  // CHECK-NOT: layout.quadrant
  // CHECK-SAME: -> tensor<4x4xf32>
  %fl = linalg.fill ins(%z : f32) outs(%e : tensor<4x4xf32>) -> tensor<4x4xf32>
  return
}
