// RUN: texflow-opt --pass-pipeline='builtin.module(texflow-widen-accumulators)' %s | FileCheck %s

// texflow-widen-accumulators on f16 ops as texflow-demote-f16 leaves them: every sum over a
// reduction loop accumulates in f32 and is rounded to f16 after it.

// A named contraction is rebuilt with its f16 operands and an f32 init (linalg extends the
// operands to the output type); its result is rounded.
// CHECK-LABEL: func.func @matmul
// CHECK:       %[[I32:.+]] = linalg.generic {{.*}} ins(%{{.+}} : tensor<4x8xf16>) outs(%{{.+}} : tensor<4x8xf32>)
// CHECK:         arith.extf
// CHECK:       %[[M:.+]] = linalg.matmul ins(%arg0, %arg1 : tensor<4x64xf16>, tensor<64x8xf16>) outs(%[[I32]] : tensor<4x8xf32>) -> tensor<4x8xf32>
// CHECK:       %[[R:.+]] = linalg.generic {{.*}} ins(%[[M]] : tensor<4x8xf32>) outs(%{{.+}} : tensor<4x8xf16>)
// CHECK:         arith.truncf
// CHECK:       return %[[R]]

// A mean (ResNet-50's global average pool): the sum accumulates in f32, and the division that
// follows it is done in f32 before rounding: the sum of 49 values may exceed f16's 65504 where
// the mean does not.
// CHECK-LABEL: func.func @mean
// CHECK:       %[[S:.+]] = linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction"]} ins(%arg0 : tensor<1x64x49xf16>) outs(%{{.+}} : tensor<1x64xf32>)
// CHECK:         %[[X:.+]] = arith.extf %{{.+}} : f16 to f32
// CHECK:         arith.addf %[[X]], %{{.+}} : f32
// CHECK:       linalg.generic {{.*}} ins(%[[S]] : tensor<1x64xf32>) outs(%{{.+}} : tensor<1x64xf16>)
// CHECK:         %[[N:.+]] = arith.extf %{{.+}} : f16 to f32
// CHECK:         %[[D:.+]] = arith.divf %{{.+}}, %[[N]] : f32
// CHECK:         arith.truncf %[[D]] : f32 to f16
// CHECK-NOT:   arith.truncf
// CHECK:       return

// A contraction written as a generic: the product is taken in f32 from the extended factors.
// CHECK-LABEL: func.func @dot
// CHECK:       linalg.generic {{.*}} ins(%arg0, %arg1 : tensor<8x32xf16>, tensor<32xf16>) outs(%{{.+}} : tensor<8xf32>)
// CHECK-NEXT:    ^bb0(%{{.+}}: f16, %{{.+}}: f16, %{{.+}}: f32):
// CHECK-NEXT:      %[[A:.+]] = arith.extf %{{.+}} : f16 to f32
// CHECK-NEXT:      %[[B:.+]] = arith.extf %{{.+}} : f16 to f32
// CHECK-NEXT:      %[[P:.+]] = arith.mulf %[[A]], %[[B]] : f32
// CHECK:         arith.addf %{{.+}}, %[[P]] : f32
// CHECK:       arith.truncf

// A max reduction is not a sum (texflow-demote-f16 widens those itself): left alone.
// CHECK-LABEL: func.func @max
// CHECK-NOT:   f32
// CHECK:       return

func.func @matmul(%a: tensor<4x64xf16>, %b: tensor<64x8xf16>) -> tensor<4x8xf16> {
  %z = arith.constant 0.0 : f16
  %e = tensor.empty() : tensor<4x8xf16>
  %i = linalg.fill ins(%z : f16) outs(%e : tensor<4x8xf16>) -> tensor<4x8xf16>
  %r = linalg.matmul ins(%a, %b : tensor<4x64xf16>, tensor<64x8xf16>) outs(%i : tensor<4x8xf16>) -> tensor<4x8xf16>
  return %r : tensor<4x8xf16>
}

func.func @mean(%x: tensor<1x64x49xf16>) -> tensor<1x64xf16> {
  %z = arith.constant 0.0 : f16
  %n = arith.constant 49.0 : f16
  %e = tensor.empty() : tensor<1x64xf16>
  %i = linalg.fill ins(%z : f16) outs(%e : tensor<1x64xf16>) -> tensor<1x64xf16>
  %s = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1)>],
                       iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x : tensor<1x64x49xf16>) outs(%i : tensor<1x64xf16>) {
  ^bb0(%v: f16, %acc: f16):
    %t = arith.addf %v, %acc : f16
    linalg.yield %t : f16
  } -> tensor<1x64xf16>
  %e2 = tensor.empty() : tensor<1x64xf16>
  %m = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, d1)>],
                       iterator_types = ["parallel", "parallel"]}
      ins(%s : tensor<1x64xf16>) outs(%e2 : tensor<1x64xf16>) {
  ^bb0(%v: f16, %o: f16):
    %d = arith.divf %v, %n : f16
    linalg.yield %d : f16
  } -> tensor<1x64xf16>
  return %m : tensor<1x64xf16>
}

func.func @dot(%x: tensor<8x32xf16>, %w: tensor<32xf16>) -> tensor<8xf16> {
  %z = arith.constant 0.0 : f16
  %e = tensor.empty() : tensor<8xf16>
  %i = linalg.fill ins(%z : f16) outs(%e : tensor<8xf16>) -> tensor<8xf16>
  %r = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d1)>, affine_map<(d0, d1) -> (d0)>],
                       iterator_types = ["parallel", "reduction"]}
      ins(%x, %w : tensor<8x32xf16>, tensor<32xf16>) outs(%i : tensor<8xf16>) {
  ^bb0(%a: f16, %b: f16, %acc: f16):
    %p = arith.mulf %a, %b : f16
    %t = arith.addf %acc, %p : f16
    linalg.yield %t : f16
  } -> tensor<8xf16>
  return %r : tensor<8xf16>
}

func.func @max(%x: tensor<8x32xf16>) -> tensor<8xf16> {
  %z = arith.constant 0xFC00 : f16
  %e = tensor.empty() : tensor<8xf16>
  %i = linalg.fill ins(%z : f16) outs(%e : tensor<8xf16>) -> tensor<8xf16>
  %r = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0)>],
                       iterator_types = ["parallel", "reduction"]}
      ins(%x : tensor<8x32xf16>) outs(%i : tensor<8xf16>) {
  ^bb0(%a: f16, %acc: f16):
    %t = arith.maximumf %acc, %a : f16
    linalg.yield %t : f16
  } -> tensor<8xf16>
  return %r : tensor<8xf16>
}
