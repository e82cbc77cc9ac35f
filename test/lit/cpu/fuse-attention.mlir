// texflow-fuse-attention: Q.K^T -> softmax -> .V with narrow heads becomes one
// iree_linalg_ext.attention (online softmax; the 16x16 score matrix per head is never written).
// The operands' indexing maps come from the two contractions': K is read as stored (2x8x16,
// already transposed), V through the unit-dim collapse of the 1x16x2x8 head split that layout
// elimination folded into the P.V generic.

// RUN: texflow-opt --pass-pipeline='builtin.module(texflow-fuse-attention)' --texflow-statistics %s 2>&1 | FileCheck %s
// RUN: texflow-opt --pass-pipeline='builtin.module(texflow-fuse-attention{max-head-dim=4})' --texflow-statistics %s 2>&1 | FileCheck %s --check-prefix=WIDE

// CHECK: texflow-fuse-attention: 1 attentions fused
// CHECK-DAG: #[[Q:.*]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d3)>
// CHECK-DAG: #[[K:.*]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d3, d4)>
// CHECK-DAG: #[[V:.*]] = affine_map<(d0, d1, d2, d3, d4) -> (d4, d0, d2)>
// CHECK-DAG: #[[S:.*]] = affine_map<(d0, d1, d2, d3, d4) -> ()>
// CHECK-DAG: #[[O:.*]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d2)>
// Nothing of the unfused chain is left anywhere in the body: no matmul, no exp, no generic
// (so the 16x16 scores are never computed), checked in every gap between the positive lines.
// CHECK-LABEL: func.func @attention
// CHECK-NOT: {{linalg.batch_matmul|linalg.matmul|math.exp|linalg.generic|linalg.softmax}}
// CHECK: %[[VC:.*]] = tensor.collapse_shape %arg2 {{\[\[}}0, 1], [2], [3]] : tensor<1x16x2x8xf32> into tensor<16x2x8xf32>
// CHECK-NOT: {{linalg.batch_matmul|linalg.matmul|math.exp|linalg.generic|linalg.softmax}}
// CHECK: %[[R:.*]] = iree_linalg_ext.attention <indexing_maps = [#[[Q]], #[[K]], #[[V]], #[[S]], #[[O]]]> ins(%arg0, %arg1, %[[VC]], %{{.*}} : tensor<2x16x8xf32>, tensor<2x8x16xf32>, tensor<16x2x8xf32>, f32) outs(%{{.*}} : tensor<2x16x8xf32>)
// CHECK-NEXT: ^bb0(%{{.*}}: f32):
// CHECK-NEXT: iree_linalg_ext.yield
// CHECK-NEXT: } -> tensor<2x16x8xf32>
// CHECK-NEXT: return %[[R]]
// Heads wider than max-head-dim: left alone.
// WIDE: texflow-fuse-attention: 1 attentions left (heads wider than max-head-dim)
// WIDE-NOT: iree_linalg_ext.attention
// WIDE: linalg.batch_matmul
func.func @attention(%q: tensor<2x16x8xf32>, %kt: tensor<2x8x16xf32>, %v: tensor<1x16x2x8xf32>) -> tensor<2x16x8xf32> {
  %zero = arith.constant 0.0 : f32
  %es0 = tensor.empty() : tensor<2x16x16xf32>
  %fs = linalg.fill ins(%zero : f32) outs(%es0 : tensor<2x16x16xf32>) -> tensor<2x16x16xf32>
  %scores = linalg.batch_matmul ins(%q, %kt : tensor<2x16x8xf32>, tensor<2x8x16xf32>) outs(%fs : tensor<2x16x16xf32>) -> tensor<2x16x16xf32>
  %sx = tensor.expand_shape %scores [[0, 1], [2], [3]] output_shape [1, 2, 16, 16] : tensor<2x16x16xf32> into tensor<1x2x16x16xf32>
  %ninf = arith.constant 0xFF800000 : f32
    %c0 = arith.constant 0 : i64
  %e2 = tensor.empty() : tensor<1x2x16xf32>
  %ei = tensor.empty() : tensor<1x2x16xi64>
  %m0 = linalg.fill ins(%ninf : f32) outs(%e2 : tensor<1x2x16xf32>) -> tensor<1x2x16xf32>
  %i0 = linalg.fill ins(%c0 : i64) outs(%ei : tensor<1x2x16xi64>) -> tensor<1x2x16xi64>
  %m:2 = linalg.generic {indexing_maps = [affine_map<(a,b,c,d)->(a,b,c,d)>, affine_map<(a,b,c,d)->(a,b,c)>, affine_map<(a,b,c,d)->(a,b,c)>], iterator_types = ["parallel","parallel","parallel","reduction"]} ins(%sx : tensor<1x2x16x16xf32>) outs(%m0, %i0 : tensor<1x2x16xf32>, tensor<1x2x16xi64>) {
  ^bb0(%in: f32, %o: f32, %oi: i64):
    %i = linalg.index 3 : index
    %ii = arith.index_cast %i : index to i64
    %mx = arith.maximumf %in, %o : f32
    %c = arith.cmpf ogt, %in, %o : f32
    %s = arith.select %c, %ii, %oi : i64
    linalg.yield %mx, %s : f32, i64
  } -> (tensor<1x2x16xf32>, tensor<1x2x16xi64>)
  %me = tensor.expand_shape %m#0 [[0], [1], [2, 3]] output_shape [1, 2, 16, 1] : tensor<1x2x16xf32> into tensor<1x2x16x1xf32>
  %e = tensor.empty() : tensor<1x2x16x16xf32>
  %d = linalg.generic {indexing_maps = [affine_map<(a,b,c,d)->(a,b,c,d)>, affine_map<(a,b,c,d)->(a,b,c,0)>, affine_map<(a,b,c,d)->(a,b,c,d)>], iterator_types = ["parallel","parallel","parallel","parallel"]} ins(%sx, %me : tensor<1x2x16x16xf32>, tensor<1x2x16x1xf32>) outs(%e : tensor<1x2x16x16xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %r = arith.subf %a, %b : f32
    linalg.yield %r : f32
  } -> tensor<1x2x16x16xf32>
  %ex = linalg.generic {indexing_maps = [affine_map<(a,b,c,d)->(a,b,c,d)>, affine_map<(a,b,c,d)->(a,b,c,d)>], iterator_types = ["parallel","parallel","parallel","parallel"]} ins(%d : tensor<1x2x16x16xf32>) outs(%e : tensor<1x2x16x16xf32>) {
  ^bb0(%a: f32, %o: f32):
    %r = math.exp %a : f32
    linalg.yield %r : f32
  } -> tensor<1x2x16x16xf32>
  %e3 = tensor.empty() : tensor<1x2x16x1xf32>
  %s0 = linalg.fill ins(%zero : f32) outs(%e3 : tensor<1x2x16x1xf32>) -> tensor<1x2x16x1xf32>
  %s = linalg.generic {indexing_maps = [affine_map<(a,b,c,d)->(a,b,c,d)>, affine_map<(a,b,c,d)->(a,b,c,0)>], iterator_types = ["parallel","parallel","parallel","reduction"]} ins(%ex : tensor<1x2x16x16xf32>) outs(%s0 : tensor<1x2x16x1xf32>) {
  ^bb0(%a: f32, %o: f32):
    %r = arith.addf %a, %o : f32
    linalg.yield %r : f32
  } -> tensor<1x2x16x1xf32>
  %y = linalg.generic {indexing_maps = [affine_map<(a,b,c,d)->(a,b,c,d)>, affine_map<(a,b,c,d)->(a,b,c,0)>, affine_map<(a,b,c,d)->(a,b,c,d)>], iterator_types = ["parallel","parallel","parallel","parallel"]} ins(%ex, %s : tensor<1x2x16x16xf32>, tensor<1x2x16x1xf32>) outs(%e : tensor<1x2x16x16xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %r = arith.divf %a, %b : f32
    linalg.yield %r : f32
  } -> tensor<1x2x16x16xf32>
  %p = tensor.collapse_shape %y [[0, 1], [2], [3]] : tensor<1x2x16x16xf32> into tensor<2x16x16xf32>
  %eo = tensor.empty() : tensor<2x16x8xf32>
  %fo = linalg.fill ins(%zero : f32) outs(%eo : tensor<2x16x8xf32>) -> tensor<2x16x8xf32>
  %o = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>, affine_map<(d0, d1, d2, d3) -> (0, d3, d0, d2)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%p, %v : tensor<2x16x16xf32>, tensor<1x16x2x8xf32>) outs(%fo : tensor<2x16x8xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %mul = arith.mulf %a, %b : f32
    %add = arith.addf %c, %mul : f32
    linalg.yield %add : f32
  } -> tensor<2x16x8xf32>
  return %o : tensor<2x16x8xf32>
}
