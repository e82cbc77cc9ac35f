// RUN: texflow-opt --pass-pipeline='builtin.module(texflow-slice-contractions{through-transposes=true})' --split-input-file %s | FileCheck %s
// RUN: texflow-opt --pass-pipeline='builtin.module(texflow-slice-contractions)' --split-input-file %s | FileCheck %s --check-prefix=DEFAULT

// GPT-2's fused projection: matmul + bias, then three slices of the last dimension (strided
// reads, copies in IREE). Each slice gets its own matmul on a 8x4 slice of the weight (sliced
// at compile time) and its own bias add, moved below the reshape so that elimination can fold
// a head transpose into the matmul; no extract_slice is left.
// CHECK-LABEL: func.func @fused_qkv
// CHECK-NOT:   tensor.extract_slice
// CHECK:       %[[W0:.+]] = arith.constant dense<{{\[\[}}0.000000e+00, 1.000000e+00, 2.000000e+00, 3.000000e+00], {{.*}}> : tensor<8x4xf32>
// CHECK:       %[[M0:.+]] = linalg.matmul ins(%arg0, %[[W0]] : tensor<4x8xf32>, tensor<8x4xf32>) outs(%{{.+}} : tensor<4x4xf32>)
// The bias moves below the reshape (each slice's 4 values of it, at compile time).
// CHECK:       %[[E0:.+]] = tensor.expand_shape %[[M0]] {{\[\[}}0, 1], [2]] output_shape [1, 4, 4] : tensor<4x4xf32> into tensor<1x4x4xf32>
// CHECK:       %[[B0:.+]] = linalg.generic {{.*}} ins(%[[E0]], %{{.+}} : tensor<1x4x4xf32>, tensor<4xf32>)
// CHECK:       linalg.matmul ins(%arg0, %{{.+}} : tensor<4x8xf32>, tensor<8x4xf32>)
// CHECK:       %[[W2:.+]] = arith.constant dense<{{\[\[}}8.000000e+00, 9.000000e+00, 1.000000e+01, 1.100000e+01], {{.*}}> : tensor<8x4xf32>
// CHECK:       linalg.matmul ins(%arg0, %[[W2]] : tensor<4x8xf32>, tensor<8x4xf32>)
// CHECK:       return %[[B0]],
// CHECK-NOT:   tensor<8x12xf32>
#id = affine_map<(i, j) -> (i, j)>
#col = affine_map<(i, j) -> (j)>
func.func @fused_qkv(%x: tensor<4x8xf32>) -> (tensor<1x4x4xf32>, tensor<1x4x4xf32>, tensor<1x4x4xf32>) {
  %zero = arith.constant 0.0 : f32
  %w = arith.constant dense<[[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0],
                             [1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 3.0, 3.0, 3.0, 3.0],
                             [1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 3.0, 3.0, 3.0, 3.0],
                             [1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 3.0, 3.0, 3.0, 3.0],
                             [1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 3.0, 3.0, 3.0, 3.0],
                             [1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 3.0, 3.0, 3.0, 3.0],
                             [1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 3.0, 3.0, 3.0, 3.0],
                             [1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 3.0, 3.0, 3.0, 3.0]]> : tensor<8x12xf32>
  %b = arith.constant dense<[0.5, 0.5, 0.5, 0.5, 1.5, 1.5, 1.5, 1.5, 2.5, 2.5, 2.5, 2.5]> : tensor<12xf32>
  %e = tensor.empty() : tensor<4x12xf32>
  %f = linalg.fill ins(%zero : f32) outs(%e : tensor<4x12xf32>) -> tensor<4x12xf32>
  %m = linalg.matmul ins(%x, %w : tensor<4x8xf32>, tensor<8x12xf32>) outs(%f : tensor<4x12xf32>) -> tensor<4x12xf32>
  %a = linalg.generic {indexing_maps = [#id, #col, #id], iterator_types = ["parallel", "parallel"]}
      ins(%m, %b : tensor<4x12xf32>, tensor<12xf32>) outs(%e : tensor<4x12xf32>) {
  ^bb0(%p: f32, %q: f32, %o: f32):
    %s = arith.addf %p, %q : f32
    linalg.yield %s : f32
  } -> tensor<4x12xf32>
  %r = tensor.expand_shape %a [[0, 1], [2]] output_shape [1, 4, 12] : tensor<4x12xf32> into tensor<1x4x12xf32>
  %q0 = tensor.extract_slice %r[0, 0, 0] [1, 4, 4] [1, 1, 1] : tensor<1x4x12xf32> to tensor<1x4x4xf32>
  %k0 = tensor.extract_slice %r[0, 0, 4] [1, 4, 4] [1, 1, 1] : tensor<1x4x12xf32> to tensor<1x4x4xf32>
  %v0 = tensor.extract_slice %r[0, 0, 8] [1, 4, 4] [1, 1, 1] : tensor<1x4x12xf32> to tensor<1x4x4xf32>
  return %q0, %k0, %v0 : tensor<1x4x4xf32>, tensor<1x4x4xf32>, tensor<1x4x4xf32>
}

// -----

// timm's ViT/DeiT: reshape to (tokens, 3, heads, dim), move the 3 to the front, slice it.
// The slice moves through the transpose and the reshape to one 6-column range of the weight.
// The weight is an argument here, so each matmul reads a slice of it. By default (no
// through-transposes) slices behind a transpose stay.
// DEFAULT-LABEL: func.func @vit_qkv
// DEFAULT-COUNT-3: tensor.extract_slice %{{.+}} : tensor<3x1x2x5x3xf32>
// CHECK-LABEL: func.func @vit_qkv
// CHECK:       %[[W0:.+]] = tensor.extract_slice %arg1[0, 0, 0] [1, 6, 6] [1, 1, 1] : tensor<1x6x18xf32> to tensor<1x6x6xf32>
// CHECK:       linalg.batch_matmul ins(%arg0, %[[W0]] : tensor<1x5x6xf32>, tensor<1x6x6xf32>) outs(%{{.+}} : tensor<1x5x6xf32>)
// CHECK:       tensor.expand_shape %{{.+}} {{\[\[}}0], [1], [2, 3, 4]] output_shape [1, 5, 1, 2, 3] : tensor<1x5x6xf32> into tensor<1x5x1x2x3xf32>
// CHECK:       linalg.transpose ins(%{{.+}} : tensor<1x5x1x2x3xf32>) outs(%{{.+}} : tensor<1x1x2x5x3xf32>) permutation = [2, 0, 3, 1, 4]
// CHECK:       tensor.extract_slice %arg1[0, 0, 6] [1, 6, 6]
// CHECK:       tensor.extract_slice %arg1[0, 0, 12] [1, 6, 6]
// CHECK-NOT:   tensor<3x1x2x5x3xf32>
// CHECK:       return
func.func @vit_qkv(%x: tensor<1x5x6xf32>, %w: tensor<1x6x18xf32>) -> (tensor<1x1x2x5x3xf32>, tensor<1x1x2x5x3xf32>, tensor<1x1x2x5x3xf32>) {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<1x5x18xf32>
  %f = linalg.fill ins(%zero : f32) outs(%e : tensor<1x5x18xf32>) -> tensor<1x5x18xf32>
  %m = linalg.batch_matmul ins(%x, %w : tensor<1x5x6xf32>, tensor<1x6x18xf32>) outs(%f : tensor<1x5x18xf32>) -> tensor<1x5x18xf32>
  %r = tensor.expand_shape %m [[0], [1], [2, 3, 4]] output_shape [1, 5, 3, 2, 3] : tensor<1x5x18xf32> into tensor<1x5x3x2x3xf32>
  %t0 = tensor.empty() : tensor<3x1x2x5x3xf32>
  %t = linalg.transpose ins(%r : tensor<1x5x3x2x3xf32>) outs(%t0 : tensor<3x1x2x5x3xf32>) permutation = [2, 0, 3, 1, 4]
  %q = tensor.extract_slice %t[0, 0, 0, 0, 0] [1, 1, 2, 5, 3] [1, 1, 1, 1, 1] : tensor<3x1x2x5x3xf32> to tensor<1x1x2x5x3xf32>
  %k = tensor.extract_slice %t[1, 0, 0, 0, 0] [1, 1, 2, 5, 3] [1, 1, 1, 1, 1] : tensor<3x1x2x5x3xf32> to tensor<1x1x2x5x3xf32>
  %v = tensor.extract_slice %t[2, 0, 0, 0, 0] [1, 1, 2, 5, 3] [1, 1, 1, 1, 1] : tensor<3x1x2x5x3xf32> to tensor<1x1x2x5x3xf32>
  return %q, %k, %v : tensor<1x1x2x5x3xf32>, tensor<1x1x2x5x3xf32>, tensor<1x1x2x5x3xf32>
}

// -----

// Unchanged: overlapping slices (work would be duplicated), a result also read whole, and
// slices whose producers never reach a contraction.
// CHECK-LABEL: func.func @unchanged
// CHECK:       linalg.matmul
// CHECK-COUNT-2: tensor.extract_slice %{{.+}} : tensor<4x12xf32> to tensor<4x6xf32>
// CHECK:       linalg.matmul
// CHECK-COUNT-3: tensor.extract_slice
// CHECK-NOT:   linalg.matmul
// CHECK-NOT:   tensor.extract_slice
func.func @unchanged(%x: tensor<4x8xf32>, %w: tensor<8x12xf32>, %y: tensor<4x12xf32>)
    -> (tensor<4x6xf32>, tensor<4x6xf32>, tensor<4x4xf32>, tensor<4x12xf32>, tensor<4x4xf32>) {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<4x12xf32>
  %f = linalg.fill ins(%zero : f32) outs(%e : tensor<4x12xf32>) -> tensor<4x12xf32>
  %m = linalg.matmul ins(%x, %w : tensor<4x8xf32>, tensor<8x12xf32>) outs(%f : tensor<4x12xf32>) -> tensor<4x12xf32>
  %a = tensor.extract_slice %m[0, 0] [4, 6] [1, 1] : tensor<4x12xf32> to tensor<4x6xf32>
  %b = tensor.extract_slice %m[0, 4] [4, 6] [1, 1] : tensor<4x12xf32> to tensor<4x6xf32>
  %m2 = linalg.matmul ins(%x, %w : tensor<4x8xf32>, tensor<8x12xf32>) outs(%f : tensor<4x12xf32>) -> tensor<4x12xf32>
  %c = tensor.extract_slice %m2[0, 0] [4, 4] [1, 1] : tensor<4x12xf32> to tensor<4x4xf32>
  %d = tensor.extract_slice %y[0, 0] [4, 4] [1, 1] : tensor<4x12xf32> to tensor<4x4xf32>
  %d2 = tensor.extract_slice %y[0, 4] [4, 4] [1, 1] : tensor<4x12xf32> to tensor<4x4xf32>
  return %a, %b, %c, %m2, %d : tensor<4x6xf32>, tensor<4x6xf32>, tensor<4x4xf32>, tensor<4x12xf32>, tensor<4x4xf32>
}
