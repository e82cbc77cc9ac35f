// Malformed layout ops and attributes get a verifier error naming the location.
// RUN: texflow-opt --split-input-file --verify-diagnostics --pass-pipeline='builtin.module(texflow-verify-layout)' %s | FileCheck %s

// CHECK: error: texflow-verify-layout: 'layout.transform' op permutation [0, 0] is not a permutation of 2 dims at loc("-":6:8)
func.func @bad_perm(%arg0: tensor<2x3xf32>) -> tensor<2x2xf32> {
  %0 = "layout.transform"(%arg0) {kind = "permute", permutation = array<i64: 0, 0>} : (tensor<2x3xf32>) -> tensor<2x2xf32>
  return %0 : tensor<2x2xf32>
}

// -----
// CHECK: error: texflow-verify-layout: 'layout.transform' op result shape [2, 3] != permuted source shape [3, 2]
func.func @bad_shape(%arg0: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = "layout.transform"(%arg0) {kind = "permute", permutation = array<i64: 1, 0>} : (tensor<2x3xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// -----
// CHECK: error: texflow-verify-layout: 'layout.transform' op reshape changes the element count (6 -> 8)
func.func @bad_reshape(%arg0: tensor<2x3xf32>) -> tensor<8xf32> {
  %0 = "layout.transform"(%arg0) {kind = "reshape"} : (tensor<2x3xf32>) -> tensor<8xf32>
  return %0 : tensor<8xf32>
}

// -----
// CHECK: error: texflow-verify-layout: 'layout.transform' op unknown kind 'shuffle' (permute or reshape)
func.func @bad_kind(%arg0: tensor<6xf32>) -> tensor<6xf32> {
  %0 = "layout.transform"(%arg0) {kind = "shuffle"} : (tensor<6xf32>) -> tensor<6xf32>
  return %0 : tensor<6xf32>
}

// -----
// CHECK: error: texflow-verify-layout: 'arith.addf' op has an invalid quadrant #layout.quadrant<"sideways">
func.func @bad_quadrant(%a: f32) -> f32 {
  %0 = arith.addf %a, %a {layout.quadrant = #layout.quadrant<"sideways">} : f32
  return %0 : f32
}

// -----
// CHECK: error: texflow-verify-layout: 'arith.addf' op: physical order [0, 0] is not a permutation
func.func @bad_physical(%a: f32) -> f32 {
  %0 = arith.addf %a, %a {layout.physical = #layout.physical<array<i64: 0, 0>, array<i64>>} : f32
  return %0 : f32
}

// -----
// Well-formed: passes through unchanged.
// CHECK: func.func @good
// CHECK: "layout.transform"(%arg0) {kind = "permute", permutation = array<i64: 1, 0>}
func.func @good(%arg0: tensor<2x3xf32>) -> tensor<3x2xf32> {
  %0 = "layout.transform"(%arg0) {kind = "permute", permutation = array<i64: 1, 0>} : (tensor<2x3xf32>) -> tensor<3x2xf32>
  return %0 : tensor<3x2xf32>
}
