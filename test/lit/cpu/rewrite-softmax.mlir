// texflow-rewrite-softmax: the importer's decomposed softmax (a max reduction that also computes
// an unused arg-max, x - max, exp, a keep-dim sum, a division) becomes three generics: max,
// sum of exp(x - max), exp(x - max) / sum.  IREE would raise the original back into
// linalg.softmax, whose CPU code is 1.5-2.4x slower.

// RUN: texflow-opt --pass-pipeline='builtin.module(texflow-rewrite-softmax)' --texflow-statistics %s 2>&1 | FileCheck %s

// CHECK: texflow-rewrite-softmax: 3 softmaxes rewritten
// Exactly three generics and no arg-max select: nothing of the importer's chain (its i64
// arg-max, a select, a fourth generic) is left.  The body from the first generic to the return
// is matched line by line, so there is no gap for a leftover op to hide in.
// (The `filecheck` port scans a CHECK-NOT's range up to the end of the next match, not to its
// start as LLVM's FileCheck does, so a CHECK-NOT must not name what the next line matches.)
// CHECK-LABEL: func.func @softmax
// CHECK-NOT: {{arith.select|linalg.softmax|tensor<2x5xi64>|math.exp}}
// CHECK: %[[M:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction"]} ins(%arg0 : tensor<2x5x7xf32>) outs(%{{.*}} : tensor<2x5xf32>)
// CHECK-NEXT: ^bb0
// CHECK-NEXT: arith.maximumf
// CHECK-NEXT: linalg.yield
// CHECK-NEXT: } -> tensor<2x5xf32>
// CHECK-NEXT: %[[S:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction"]} ins(%arg0, %[[M]] : tensor<2x5x7xf32>, tensor<2x5xf32>) outs(%{{.*}} : tensor<2x5xf32>)
// CHECK-NEXT: ^bb0
// CHECK-NEXT: arith.subf
// CHECK-NEXT: math.exp
// CHECK-NEXT: arith.addf
// CHECK-NEXT: linalg.yield
// CHECK-NEXT: } -> tensor<2x5xf32>
// CHECK-NEXT: tensor.empty() : tensor<2x5x7xf32>
// CHECK-NEXT: %[[Y:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "parallel"]} ins(%arg0, %[[M]], %[[S]] : tensor<2x5x7xf32>, tensor<2x5xf32>, tensor<2x5xf32>) outs(%{{.*}} : tensor<2x5x7xf32>)
// CHECK-NEXT: ^bb0
// CHECK-NEXT: arith.subf
// CHECK-NEXT: math.exp
// CHECK-NEXT: arith.divf
// CHECK-NEXT: linalg.yield
// CHECK-NEXT: } -> tensor<2x5x7xf32>
// CHECK-NEXT: return %[[Y]]
// A sum whose init is not zero is not a softmax: left alone.
// CHECK-LABEL: func.func @not_softmax
// CHECK: arith.select
// A softmax of a softmax: both rewritten, the second reading the first's new result (the
// first rewrite must not leave the second holding the erased division).
// CHECK-LABEL: func.func @softmax_of_softmax
// CHECK-NOT: arith.select
// CHECK: %[[Y1:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "parallel"]} ins(%arg0,
// CHECK: arith.divf
// CHECK: linalg.generic {{.*}} ins(%[[Y1]] : tensor<2x5x7xf32>)
// CHECK: %[[Y2:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "parallel"]} ins(%[[Y1]],
// CHECK: arith.divf
// CHECK: return %[[Y2]]
func.func @softmax(%x: tensor<2x5x7xf32>) -> tensor<2x5x7xf32> {
  %ninf = arith.constant 0xFF800000 : f32
  %z = arith.constant 0.0 : f32
  %c0 = arith.constant 0 : i64
  %e2 = tensor.empty() : tensor<2x5xf32>
  %ei = tensor.empty() : tensor<2x5xi64>
  %m0 = linalg.fill ins(%ninf : f32) outs(%e2 : tensor<2x5xf32>) -> tensor<2x5xf32>
  %i0 = linalg.fill ins(%c0 : i64) outs(%ei : tensor<2x5xi64>) -> tensor<2x5xi64>
  %m:2 = linalg.generic {indexing_maps = [affine_map<(a,b,c)->(a,b,c)>, affine_map<(a,b,c)->(a,b)>, affine_map<(a,b,c)->(a,b)>], iterator_types = ["parallel","parallel","reduction"]} ins(%x : tensor<2x5x7xf32>) outs(%m0, %i0 : tensor<2x5xf32>, tensor<2x5xi64>) {
  ^bb0(%in: f32, %o: f32, %oi: i64):
    %i = linalg.index 2 : index
    %ii = arith.index_cast %i : index to i64
    %mx = arith.maximumf %in, %o : f32
    %c = arith.cmpf ogt, %in, %o : f32
    %s = arith.select %c, %ii, %oi : i64
    linalg.yield %mx, %s : f32, i64
  } -> (tensor<2x5xf32>, tensor<2x5xi64>)
  %me = tensor.expand_shape %m#0 [[0], [1, 2]] output_shape [2, 5, 1] : tensor<2x5xf32> into tensor<2x5x1xf32>
  %e = tensor.empty() : tensor<2x5x7xf32>
  %d = linalg.generic {indexing_maps = [affine_map<(a,b,c)->(a,b,c)>, affine_map<(a,b,c)->(a,b,0)>, affine_map<(a,b,c)->(a,b,c)>], iterator_types = ["parallel","parallel","parallel"]} ins(%x, %me : tensor<2x5x7xf32>, tensor<2x5x1xf32>) outs(%e : tensor<2x5x7xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %r = arith.subf %a, %b : f32
    linalg.yield %r : f32
  } -> tensor<2x5x7xf32>
  %ex = linalg.generic {indexing_maps = [affine_map<(a,b,c)->(a,b,c)>, affine_map<(a,b,c)->(a,b,c)>], iterator_types = ["parallel","parallel","parallel"]} ins(%d : tensor<2x5x7xf32>) outs(%e : tensor<2x5x7xf32>) {
  ^bb0(%a: f32, %o: f32):
    %r = math.exp %a : f32
    linalg.yield %r : f32
  } -> tensor<2x5x7xf32>
  %e3 = tensor.empty() : tensor<2x5x1xf32>
  %s0 = linalg.fill ins(%z : f32) outs(%e3 : tensor<2x5x1xf32>) -> tensor<2x5x1xf32>
  %s = linalg.generic {indexing_maps = [affine_map<(a,b,c)->(a,b,c)>, affine_map<(a,b,c)->(a,b,0)>], iterator_types = ["parallel","parallel","reduction"]} ins(%ex : tensor<2x5x7xf32>) outs(%s0 : tensor<2x5x1xf32>) {
  ^bb0(%a: f32, %o: f32):
    %r = arith.addf %a, %o : f32
    linalg.yield %r : f32
  } -> tensor<2x5x1xf32>
  %y = linalg.generic {indexing_maps = [affine_map<(a,b,c)->(a,b,c)>, affine_map<(a,b,c)->(a,b,0)>, affine_map<(a,b,c)->(a,b,c)>], iterator_types = ["parallel","parallel","parallel"]} ins(%ex, %s : tensor<2x5x7xf32>, tensor<2x5x1xf32>) outs(%e : tensor<2x5x7xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %r = arith.divf %a, %b : f32
    linalg.yield %r : f32
  } -> tensor<2x5x7xf32>
  return %y : tensor<2x5x7xf32>
}
func.func @not_softmax(%x: tensor<2x5x7xf32>) -> tensor<2x5x7xf32> {
  %ninf = arith.constant 0xFF800000 : f32
  %z = arith.constant 1.0 : f32
  %c0 = arith.constant 0 : i64
  %e2 = tensor.empty() : tensor<2x5xf32>
  %ei = tensor.empty() : tensor<2x5xi64>
  %m0 = linalg.fill ins(%ninf : f32) outs(%e2 : tensor<2x5xf32>) -> tensor<2x5xf32>
  %i0 = linalg.fill ins(%c0 : i64) outs(%ei : tensor<2x5xi64>) -> tensor<2x5xi64>
  %m:2 = linalg.generic {indexing_maps = [affine_map<(a,b,c)->(a,b,c)>, affine_map<(a,b,c)->(a,b)>, affine_map<(a,b,c)->(a,b)>], iterator_types = ["parallel","parallel","reduction"]} ins(%x : tensor<2x5x7xf32>) outs(%m0, %i0 : tensor<2x5xf32>, tensor<2x5xi64>) {
  ^bb0(%in: f32, %o: f32, %oi: i64):
    %i = linalg.index 2 : index
    %ii = arith.index_cast %i : index to i64
    %mx = arith.maximumf %in, %o : f32
    %c = arith.cmpf ogt, %in, %o : f32
    %s = arith.select %c, %ii, %oi : i64
    linalg.yield %mx, %s : f32, i64
  } -> (tensor<2x5xf32>, tensor<2x5xi64>)
  %me = tensor.expand_shape %m#0 [[0], [1, 2]] output_shape [2, 5, 1] : tensor<2x5xf32> into tensor<2x5x1xf32>
  %e = tensor.empty() : tensor<2x5x7xf32>
  %d = linalg.generic {indexing_maps = [affine_map<(a,b,c)->(a,b,c)>, affine_map<(a,b,c)->(a,b,0)>, affine_map<(a,b,c)->(a,b,c)>], iterator_types = ["parallel","parallel","parallel"]} ins(%x, %me : tensor<2x5x7xf32>, tensor<2x5x1xf32>) outs(%e : tensor<2x5x7xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %r = arith.subf %a, %b : f32
    linalg.yield %r : f32
  } -> tensor<2x5x7xf32>
  %ex = linalg.generic {indexing_maps = [affine_map<(a,b,c)->(a,b,c)>, affine_map<(a,b,c)->(a,b,c)>], iterator_types = ["parallel","parallel","parallel"]} ins(%d : tensor<2x5x7xf32>) outs(%e : tensor<2x5x7xf32>) {
  ^bb0(%a: f32, %o: f32):
    %r = math.exp %a : f32
    linalg.yield %r : f32
  } -> tensor<2x5x7xf32>
  %e3 = tensor.empty() : tensor<2x5x1xf32>
  %s0 = linalg.fill ins(%z : f32) outs(%e3 : tensor<2x5x1xf32>) -> tensor<2x5x1xf32>
  %s = linalg.generic {indexing_maps = [affine_map<(a,b,c)->(a,b,c)>, affine_map<(a,b,c)->(a,b,0)>], iterator_types = ["parallel","parallel","reduction"]} ins(%ex : tensor<2x5x7xf32>) outs(%s0 : tensor<2x5x1xf32>) {
  ^bb0(%a: f32, %o: f32):
    %r = arith.addf %a, %o : f32
    linalg.yield %r : f32
  } -> tensor<2x5x1xf32>
  %y = linalg.generic {indexing_maps = [affine_map<(a,b,c)->(a,b,c)>, affine_map<(a,b,c)->(a,b,0)>, affine_map<(a,b,c)->(a,b,c)>], iterator_types = ["parallel","parallel","parallel"]} ins(%ex, %s : tensor<2x5x7xf32>, tensor<2x5x1xf32>) outs(%e : tensor<2x5x7xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %r = arith.divf %a, %b : f32
    linalg.yield %r : f32
  } -> tensor<2x5x7xf32>
  return %y : tensor<2x5x7xf32>
}

func.func @softmax_of_softmax(%x: tensor<2x5x7xf32>) -> tensor<2x5x7xf32> {
  %ninf = arith.constant 0xFF800000 : f32
  %z = arith.constant 0.0 : f32
  %c0 = arith.constant 0 : i64
  %e2 = tensor.empty() : tensor<2x5xf32>
  %ei = tensor.empty() : tensor<2x5xi64>
  %m0 = linalg.fill ins(%ninf : f32) outs(%e2 : tensor<2x5xf32>) -> tensor<2x5xf32>
  %i0 = linalg.fill ins(%c0 : i64) outs(%ei : tensor<2x5xi64>) -> tensor<2x5xi64>
  %m:2 = linalg.generic {indexing_maps = [affine_map<(a,b,c)->(a,b,c)>, affine_map<(a,b,c)->(a,b)>, affine_map<(a,b,c)->(a,b)>], iterator_types = ["parallel","parallel","reduction"]} ins(%x : tensor<2x5x7xf32>) outs(%m0, %i0 : tensor<2x5xf32>, tensor<2x5xi64>) {
  ^bb0(%in: f32, %o: f32, %oi: i64):
    %i = linalg.index 2 : index
    %ii = arith.index_cast %i : index to i64
    %mx = arith.maximumf %in, %o : f32
    %c = arith.cmpf ogt, %in, %o : f32
    %s = arith.select %c, %ii, %oi : i64
    linalg.yield %mx, %s : f32, i64
  } -> (tensor<2x5xf32>, tensor<2x5xi64>)
  %me = tensor.expand_shape %m#0 [[0], [1, 2]] output_shape [2, 5, 1] : tensor<2x5xf32> into tensor<2x5x1xf32>
  %e = tensor.empty() : tensor<2x5x7xf32>
  %d = linalg.generic {indexing_maps = [affine_map<(a,b,c)->(a,b,c)>, affine_map<(a,b,c)->(a,b,0)>, affine_map<(a,b,c)->(a,b,c)>], iterator_types = ["parallel","parallel","parallel"]} ins(%x, %me : tensor<2x5x7xf32>, tensor<2x5x1xf32>) outs(%e : tensor<2x5x7xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %r = arith.subf %a, %b : f32
    linalg.yield %r : f32
  } -> tensor<2x5x7xf32>
  %ex = linalg.generic {indexing_maps = [affine_map<(a,b,c)->(a,b,c)>, affine_map<(a,b,c)->(a,b,c)>], iterator_types = ["parallel","parallel","parallel"]} ins(%d : tensor<2x5x7xf32>) outs(%e : tensor<2x5x7xf32>) {
  ^bb0(%a: f32, %o: f32):
    %r = math.exp %a : f32
    linalg.yield %r : f32
  } -> tensor<2x5x7xf32>
  %e3 = tensor.empty() : tensor<2x5x1xf32>
  %s0 = linalg.fill ins(%z : f32) outs(%e3 : tensor<2x5x1xf32>) -> tensor<2x5x1xf32>
  %s = linalg.generic {indexing_maps = [affine_map<(a,b,c)->(a,b,c)>, affine_map<(a,b,c)->(a,b,0)>], iterator_types = ["parallel","parallel","reduction"]} ins(%ex : tensor<2x5x7xf32>) outs(%s0 : tensor<2x5x1xf32>) {
  ^bb0(%a: f32, %o: f32):
    %r = arith.addf %a, %o : f32
    linalg.yield %r : f32
  } -> tensor<2x5x1xf32>
  %y = linalg.generic {indexing_maps = [affine_map<(a,b,c)->(a,b,c)>, affine_map<(a,b,c)->(a,b,0)>, affine_map<(a,b,c)->(a,b,c)>], iterator_types = ["parallel","parallel","parallel"]} ins(%ex, %s : tensor<2x5x7xf32>, tensor<2x5x1xf32>) outs(%e : tensor<2x5x7xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %r = arith.divf %a, %b : f32
    linalg.yield %r : f32
  } -> tensor<2x5x7xf32>
  %ninf_2 = arith.constant 0xFF800000 : f32
  %z_2 = arith.constant 0.0 : f32
  %c0_2 = arith.constant 0 : i64
  %e2_2 = tensor.empty() : tensor<2x5xf32>
  %ei_2 = tensor.empty() : tensor<2x5xi64>
  %m0_2 = linalg.fill ins(%ninf_2 : f32) outs(%e2_2 : tensor<2x5xf32>) -> tensor<2x5xf32>
  %i0_2 = linalg.fill ins(%c0_2 : i64) outs(%ei_2 : tensor<2x5xi64>) -> tensor<2x5xi64>
  %m_2:2 = linalg.generic {indexing_maps = [affine_map<(a,b,c)->(a,b,c)>, affine_map<(a,b,c)->(a,b)>, affine_map<(a,b,c)->(a,b)>], iterator_types = ["parallel","parallel","reduction"]} ins(%y : tensor<2x5x7xf32>) outs(%m0_2, %i0_2 : tensor<2x5xf32>, tensor<2x5xi64>) {
  ^bb0(%in_2: f32, %o_2: f32, %oi_2: i64):
    %i_2 = linalg.index 2 : index
    %ii_2 = arith.index_cast %i_2 : index to i64
    %mx_2 = arith.maximumf %in_2, %o_2 : f32
    %c_2 = arith.cmpf ogt, %in_2, %o_2 : f32
    %s_2 = arith.select %c_2, %ii_2, %oi_2 : i64
    linalg.yield %mx_2, %s_2 : f32, i64
  } -> (tensor<2x5xf32>, tensor<2x5xi64>)
  %me_2 = tensor.expand_shape %m_2#0 [[0], [1, 2]] output_shape [2, 5, 1] : tensor<2x5xf32> into tensor<2x5x1xf32>
  %e_2 = tensor.empty() : tensor<2x5x7xf32>
  %d_2 = linalg.generic {indexing_maps = [affine_map<(a,b,c)->(a,b,c)>, affine_map<(a,b,c)->(a,b,0)>, affine_map<(a,b,c)->(a,b,c)>], iterator_types = ["parallel","parallel","parallel"]} ins(%y, %me_2 : tensor<2x5x7xf32>, tensor<2x5x1xf32>) outs(%e_2 : tensor<2x5x7xf32>) {
  ^bb0(%a_2: f32, %b_2: f32, %o_2: f32):
    %r_2 = arith.subf %a_2, %b_2 : f32
    linalg.yield %r_2 : f32
  } -> tensor<2x5x7xf32>
  %ex_2 = linalg.generic {indexing_maps = [affine_map<(a,b,c)->(a,b,c)>, affine_map<(a,b,c)->(a,b,c)>], iterator_types = ["parallel","parallel","parallel"]} ins(%d_2 : tensor<2x5x7xf32>) outs(%e_2 : tensor<2x5x7xf32>) {
  ^bb0(%a_2: f32, %o_2: f32):
    %r_2 = math.exp %a_2 : f32
    linalg.yield %r_2 : f32
  } -> tensor<2x5x7xf32>
  %e3_2 = tensor.empty() : tensor<2x5x1xf32>
  %s0_2 = linalg.fill ins(%z_2 : f32) outs(%e3_2 : tensor<2x5x1xf32>) -> tensor<2x5x1xf32>
  %s_2 = linalg.generic {indexing_maps = [affine_map<(a,b,c)->(a,b,c)>, affine_map<(a,b,c)->(a,b,0)>], iterator_types = ["parallel","parallel","reduction"]} ins(%ex_2 : tensor<2x5x7xf32>) outs(%s0_2 : tensor<2x5x1xf32>) {
  ^bb0(%a_2: f32, %o_2: f32):
    %r_2 = arith.addf %a_2, %o_2 : f32
    linalg.yield %r_2 : f32
  } -> tensor<2x5x1xf32>
  %y_2 = linalg.generic {indexing_maps = [affine_map<(a,b,c)->(a,b,c)>, affine_map<(a,b,c)->(a,b,0)>, affine_map<(a,b,c)->(a,b,c)>], iterator_types = ["parallel","parallel","parallel"]} ins(%ex_2, %s_2 : tensor<2x5x7xf32>, tensor<2x5x1xf32>) outs(%e_2 : tensor<2x5x7xf32>) {
  ^bb0(%a_2: f32, %b_2: f32, %o_2: f32):
    %r_2 = arith.divf %a_2, %b_2 : f32
    linalg.yield %r_2 : f32
  } -> tensor<2x5x7xf32>
  return %y_2 : tensor<2x5x7xf32>
}
