// A transpose feeding an elementwise DAG (SiLU: x * sigmoid(x), so x has two
// users) whose only exit is the inverse transpose: the region is rebuilt in
// the source layout, the pair cancels, the constant is re-laid out.
// RUN: texflow-opt --pass-pipeline='builtin.module(texflow-raise-layout,texflow-eliminate-layout,texflow-lower-layout,canonicalize)' --texflow-statistics %s 2>%t.stats | FileCheck %s
// RUN: FileCheck %s --check-prefix=STATS < %t.stats
// STATS: 3 permutations pushed through elementwise regions

#id = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-LABEL: func.func @silu_region
// CHECK: %[[C:.+]] = arith.constant dense<{{\[}}[1.000000e+00, 3.000000e+00], [2.000000e+00, 4.000000e+00]]>
// CHECK: %[[A:.+]] = linalg.generic {{.*}} ins(%arg0, %[[C]] : tensor<2x2xf32>, tensor<2x2xf32>)
// CHECK: %[[S:.+]] = linalg.generic {{.*}} ins(%[[A]] : tensor<2x2xf32>)
// CHECK: %[[M:.+]] = linalg.generic {{.*}} ins(%[[A]], %[[S]] : tensor<2x2xf32>, tensor<2x2xf32>)
// CHECK-NOT: linalg.transpose
// CHECK: return %[[M]]
func.func @silu_region(%arg0: tensor<2x2xf32>) -> tensor<2x2xf32> {
  %cst = arith.constant dense<[[1.0, 2.0], [3.0, 4.0]]> : tensor<2x2xf32>
  %e = tensor.empty() : tensor<2x2xf32>
  %t = linalg.transpose ins(%arg0 : tensor<2x2xf32>) outs(%e : tensor<2x2xf32>) permutation = [1, 0]
  %a = linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel", "parallel"]} ins(%t, %cst : tensor<2x2xf32>, tensor<2x2xf32>) outs(%e : tensor<2x2xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %r = arith.addf %x, %y : f32
    linalg.yield %r : f32
  } -> tensor<2x2xf32>
  %s = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]} ins(%a : tensor<2x2xf32>) outs(%e : tensor<2x2xf32>) {
  ^bb0(%x: f32, %o: f32):
    %n = arith.negf %x : f32
    %x2 = math.exp %n : f32
    %one = arith.constant 1.0 : f32
    %d = arith.addf %one, %x2 : f32
    %r = arith.divf %one, %d : f32
    linalg.yield %r : f32
  } -> tensor<2x2xf32>
  %m = linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel", "parallel"]} ins(%a, %s : tensor<2x2xf32>, tensor<2x2xf32>) outs(%e : tensor<2x2xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %r = arith.mulf %x, %y : f32
    linalg.yield %r : f32
  } -> tensor<2x2xf32>
  %e2 = tensor.empty() : tensor<2x2xf32>
  %t2 = linalg.transpose ins(%m : tensor<2x2xf32>) outs(%e2 : tensor<2x2xf32>) permutation = [1, 0]
  return %t2 : tensor<2x2xf32>
}
