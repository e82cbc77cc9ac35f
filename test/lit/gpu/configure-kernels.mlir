// RUN: texflow-opt --pass-pipeline='builtin.module(texflow-configure-kernels{table=%inputs/kernels-test.json})' %s | FileCheck %s
// RUN: texflow-opt --pass-pipeline='builtin.module(texflow-configure-kernels{table=%inputs/kernels-test.json nearest=false})' %s | FileCheck %s --check-prefix=EXACT
// RUN: texflow-opt --pass-pipeline='builtin.module(texflow-configure-kernels{table=%inputs/kernels-test.json})' %s | iree-compile - --iree-hal-target-device=vulkan --iree-vulkan-target=ampere --compile-to=executable-configurations | FileCheck %s --check-prefix=IREE

// texflow-configure-kernels on the NC4HW4 convolutions texflow-select-layout writes (loops
// n fo oh ow fi | co kh kw ci).  The table (Inputs/kernels-test.json) was tuned at loops
// 8x64x4x4x4 (32 filters, 8x8 pixels, 16 channels).

// The configuration, as IREE's attributes (printed as aliases before the module):
// CHECK:       #[[CONFIG:.+]] = #iree_codegen.lowering_config<tile_sizes = {{\[}}[2, 16, 4], [1, 2, 4], [0, 0, 0, 1, 4]]>
// CHECK:       #[[TRANS:.+]] = #iree_codegen.translation_info<pipeline = #iree_gpu.spirv_pipeline<BaseVectorize> workgroup_size = [1, 8, 2]>
// CHECK:       #[[COMP:.+]] = #iree_codegen.compilation_info<lowering_config = #[[CONFIG]], translation_info = #[[TRANS]]>

// A 1x1 convolution of the tuned shape: rewritten into the loop form IREE's dispatch keeps
// (pixels collapsed, batch and window loops gone) and given the table's configuration.
// CHECK-LABEL: func.func @tuned
// CHECK-DAG:   %[[X:.+]] = tensor.collapse_shape %arg0 {{\[}}[0, 1], [2, 3], [4]] : tensor<1x4x8x8x4xf32> into tensor<4x64x4xf32>
// CHECK-DAG:   %[[W:.+]] = tensor.collapse_shape %arg1 {{\[}}[0], [1], [2, 3, 4], [5]] : tensor<8x4x1x1x4x4xf32> into tensor<8x4x4x4xf32>
// CHECK-DAG:   %[[I:.+]] = tensor.collapse_shape %{{.+}} {{\[}}[0, 1], [2, 3], [4]] : tensor<1x8x8x8x4xf32> into tensor<8x64x4xf32>
// CHECK:       %[[R:.+]] = linalg.generic {indexing_maps = [#[[MX:.+]], #[[MW:.+]], #[[MO:.+]]], iterator_types = ["parallel", "parallel", "parallel", "reduction", "reduction"]}
// CHECK-SAME:    ins(%[[X]], %[[W]] : tensor<4x64x4xf32>, tensor<8x4x4x4xf32>) outs(%[[I]] : tensor<8x64x4xf32>)
// CHECK-SAME:    attrs = {compilation_info = #[[COMP]]}
// CHECK:         arith.mulf
// CHECK:         arith.addf
// CHECK:       tensor.expand_shape %[[R]] {{\[}}[0, 1], [2, 3], [4]] output_shape [1, 8, 8, 8, 4] : tensor<8x64x4xf32> into tensor<1x8x8x8x4xf32>

// A 1x1 convolution of another shape (4 filter blocks, 4x4 pixels) whose loops the tuned tiles
// divide: configured from the nearest tuned shape (its constant filter re-laid out at compile
// time); with nearest=false left to IREE.
// CHECK-LABEL: func.func @nearest
// CHECK:       %[[W2:.+]] = arith.constant dense<2.500000e-01> : tensor<4x4x4x4xf32>
// CHECK:       linalg.generic {{.*}}ins({{.*}}, %[[W2]] : tensor<4x16x4xf32>, tensor<4x4x4x4xf32>) outs({{.*}} : tensor<4x16x4xf32>)
// CHECK-SAME:    attrs = {compilation_info = #[[COMP]]}
// EXACT-LABEL: func.func @tuned
// EXACT:       linalg.generic {{.*}}compilation_info
// EXACT-LABEL: func.func @nearest
// EXACT-NOT:   compilation_info
// EXACT:       linalg.generic {{.*}}tensor<4x4x1x1x4x4xf32>
// EXACT-NOT:   compilation_info
// EXACT-LABEL: func.func @conv3x3_s2

// A 3x3 stride-2 convolution of the table's conv_nc4hw4_s2 shape: only the batch loop is
// dropped (the filter, a function argument, is read as it is), and it is configured.
// CHECK-LABEL: func.func @conv3x3_s2
// CHECK:       %[[X2:.+]] = tensor.collapse_shape %arg0 {{\[}}[0, 1], [2], [3], [4]] : tensor<1x4x9x9x4xf32> into tensor<4x9x9x4xf32>
// CHECK:       linalg.generic {indexing_maps = [#[[M0:.+]], #[[M1:.+]], #[[M2:.+]]], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction", "reduction", "reduction", "reduction"]}
// CHECK-SAME:    ins(%[[X2]], %arg1 : tensor<4x9x9x4xf32>, tensor<4x4x3x3x4x4xf32>) outs(%{{.+}} : tensor<4x4x4x4xf32>)
// CHECK-SAME:    attrs = {compilation_info = #{{.+}}}
// CHECK:       tensor.expand_shape {{.*}} : tensor<4x4x4x4xf32> into tensor<1x4x4x4x4xf32>

// A 3x3 stride-1 convolution (no conv_nc4hw4_s1 entry in the table), and a 1x1 convolution whose
// pixel loop (5x5) no tuned tile divides, have no fitting configuration: both stay as they were.
// CHECK-LABEL: func.func @conv3x3(
// CHECK-NOT:   compilation_info
// CHECK:       linalg.generic {{.*}}tensor<4x4x3x3x4x4xf32>
// CHECK-LABEL: func.func @no_fit
// CHECK-NOT:   compilation_info
// CHECK:       linalg.generic {{.*}}tensor<8x4x1x1x4x4xf32>
// CHECK-NOT:   compilation_info

// The configuration reaches IREE's dispatch of @tuned (its filter an argument, which IREE cannot
// fold): without it IREE 3.13 configures this op as SubgroupReduce.
// IREE-LABEL: func.func @tuned_dispatch_0_
// IREE-SAME:    translation_info = #iree_codegen.translation_info<pipeline = #iree_gpu.spirv_pipeline<BaseVectorize> workgroup_size = [1, 8, 2]>
// IREE:         linalg.generic
// IREE-SAME:    lowering_config = #iree_codegen.lowering_config<tile_sizes = {{\[}}[2, 16, 4], [1, 2, 4], [0, 0, 0, 1, 4]]>

#x = affine_map<(d0, d1, d2, d3, d4, d5, d6, d7, d8) -> (d0, d5, d2 + d6, d3 + d7, d8)>
#x2 = affine_map<(d0, d1, d2, d3, d4, d5, d6, d7, d8) -> (d0, d5, d2 * 2 + d6, d3 * 2 + d7, d8)>
#w = affine_map<(d0, d1, d2, d3, d4, d5, d6, d7, d8) -> (d1, d5, d6, d7, d8, d4)>
#o = affine_map<(d0, d1, d2, d3, d4, d5, d6, d7, d8) -> (d0, d1, d2, d3, d4)>
func.func @tuned(%x: tensor<1x4x8x8x4xf32>, %w: tensor<8x4x1x1x4x4xf32>) -> tensor<1x8x8x8x4xf32> {
  %z = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<1x8x8x8x4xf32>
  %i = linalg.fill ins(%z : f32) outs(%e : tensor<1x8x8x8x4xf32>) -> tensor<1x8x8x8x4xf32>
  %r = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel", "reduction", "reduction", "reduction", "reduction"]}
      ins(%x, %w : tensor<1x4x8x8x4xf32>, tensor<8x4x1x1x4x4xf32>) outs(%i : tensor<1x8x8x8x4xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %m = arith.mulf %a, %b : f32
    %s = arith.addf %o, %m : f32
    linalg.yield %s : f32
  } -> tensor<1x8x8x8x4xf32>
  return %r : tensor<1x8x8x8x4xf32>
}

func.func @nearest(%x: tensor<1x4x4x4x4xf32>) -> tensor<1x4x4x4x4xf32> {
  %w = arith.constant dense<0.25> : tensor<4x4x1x1x4x4xf32>
  %z = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<1x4x4x4x4xf32>
  %i = linalg.fill ins(%z : f32) outs(%e : tensor<1x4x4x4x4xf32>) -> tensor<1x4x4x4x4xf32>
  %r = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel", "reduction", "reduction", "reduction", "reduction"]}
      ins(%x, %w : tensor<1x4x4x4x4xf32>, tensor<4x4x1x1x4x4xf32>) outs(%i : tensor<1x4x4x4x4xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %m = arith.mulf %a, %b : f32
    %s = arith.addf %o, %m : f32
    linalg.yield %s : f32
  } -> tensor<1x4x4x4x4xf32>
  return %r : tensor<1x4x4x4x4xf32>
}

func.func @conv3x3_s2(%x: tensor<1x4x9x9x4xf32>, %w: tensor<4x4x3x3x4x4xf32>) -> tensor<1x4x4x4x4xf32> {
  %z = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<1x4x4x4x4xf32>
  %i = linalg.fill ins(%z : f32) outs(%e : tensor<1x4x4x4x4xf32>) -> tensor<1x4x4x4x4xf32>
  %r = linalg.generic {indexing_maps = [#x2, #w, #o], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel", "reduction", "reduction", "reduction", "reduction"]}
      ins(%x, %w : tensor<1x4x9x9x4xf32>, tensor<4x4x3x3x4x4xf32>) outs(%i : tensor<1x4x4x4x4xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %m = arith.mulf %a, %b : f32
    %s = arith.addf %o, %m : f32
    linalg.yield %s : f32
  } -> tensor<1x4x4x4x4xf32>
  return %r : tensor<1x4x4x4x4xf32>
}

func.func @conv3x3(%x: tensor<1x4x10x10x4xf32>) -> tensor<1x4x8x8x4xf32> {
  %w = arith.constant dense<0.5> : tensor<4x4x3x3x4x4xf32>
  %z = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<1x4x8x8x4xf32>
  %i = linalg.fill ins(%z : f32) outs(%e : tensor<1x4x8x8x4xf32>) -> tensor<1x4x8x8x4xf32>
  %r = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel", "reduction", "reduction", "reduction", "reduction"]}
      ins(%x, %w : tensor<1x4x10x10x4xf32>, tensor<4x4x3x3x4x4xf32>) outs(%i : tensor<1x4x8x8x4xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %m = arith.mulf %a, %b : f32
    %s = arith.addf %o, %m : f32
    linalg.yield %s : f32
  } -> tensor<1x4x8x8x4xf32>
  return %r : tensor<1x4x8x8x4xf32>
}

func.func @no_fit(%x: tensor<1x4x5x5x4xf32>) -> tensor<1x8x5x5x4xf32> {
  %w = arith.constant dense<0.5> : tensor<8x4x1x1x4x4xf32>
  %z = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<1x8x5x5x4xf32>
  %i = linalg.fill ins(%z : f32) outs(%e : tensor<1x8x5x5x4xf32>) -> tensor<1x8x5x5x4xf32>
  %r = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel", "reduction", "reduction", "reduction", "reduction"]}
      ins(%x, %w : tensor<1x4x5x5x4xf32>, tensor<8x4x1x1x4x4xf32>) outs(%i : tensor<1x8x5x5x4xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %m = arith.mulf %a, %b : f32
    %s = arith.addf %o, %m : f32
    linalg.yield %s : f32
  } -> tensor<1x8x5x5x4xf32>
  return %r : tensor<1x8x5x5x4xf32>
}
