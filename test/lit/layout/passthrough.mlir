// IR the layout passes do not understand passes through unchanged; with
// --texflow-verbose they say what they left alone.
// RUN: texflow-opt --texflow-verbose --pass-pipeline='builtin.module(texflow-raise-layout,texflow-eliminate-layout,texflow-lower-layout)' %s 2>%t.remarks | FileCheck %s
// RUN: FileCheck %s --check-prefix=REMARK < %t.remarks

// CHECK-LABEL: func.func @dynamic
// CHECK: linalg.transpose ins(%arg0 : tensor<?x4xf32>)
// REMARK: remark: texflow-raise-layout: left linalg.transpose alone: dynamic or unranked result
func.func @dynamic(%arg0: tensor<?x4xf32>, %e: tensor<4x?xf32>) -> tensor<4x?xf32> {
  %t = linalg.transpose ins(%arg0 : tensor<?x4xf32>) outs(%e : tensor<4x?xf32>) permutation = [1, 0]
  return %t : tensor<4x?xf32>
}

// A transpose that is a function result has nothing to fold into: it stays.
// CHECK-LABEL: func.func @result
// CHECK: linalg.transpose ins(%arg0 : tensor<2x3xf32>)
// REMARK: remark: texflow-eliminate-layout: kept permute [2, 3]->[3, 2] (users: func.return)
func.func @result(%arg0: tensor<2x3xf32>) -> tensor<3x2xf32> {
  %e = tensor.empty() : tensor<3x2xf32>
  %t = linalg.transpose ins(%arg0 : tensor<2x3xf32>) outs(%e : tensor<3x2xf32>) permutation = [1, 0]
  return %t : tensor<3x2xf32>
}
