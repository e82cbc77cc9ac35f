// RUN: iree-compile %s --iree-hal-target-device=vulkan --iree-vulkan-target=ampere --compile-to=executable-sources | texflow-opt --pass-pipeline='builtin.module(texflow-configure-kernels{table=%inputs/kernels-test.json})' -o %t.mlir
// RUN: FileCheck %s < %t.mlir
// RUN: iree-compile %t.mlir --iree-hal-target-device=vulkan --iree-vulkan-target=ampere --compile-from=executable-sources --compile-to=executable-configurations | FileCheck %s --check-prefix=IREE
// RUN: iree-compile %s --iree-hal-target-device=vulkan --iree-vulkan-target=ampere --compile-to=executable-sources | texflow-opt --pass-pipeline='builtin.module(texflow-configure-kernels{table=%inputs/kernels-test.json nearest=false})' | FileCheck %s --check-prefix=EXACT

// texflow-configure-kernels runs on IREE's dispatches (the executable-sources phase), where the
// NC4HW4 convolutions texflow-select-layout writes (loops n fo oh ow fi | co kh kw ci, below)
// are in their final loop form: IREE has folded the batch and unit window loops and, unless it
// writes the result into a padded buffer, collapsed a 1x1 convolution's pixels.  The table
// (Inputs/kernels-test.json) was tuned at conv1x1_nc4hw4 8x64x4x4x4 (32 filters, 8x8 pixels, 16
// channels), conv1x1_nc4hw4_2d 8x8x8x4x4x4 and conv_nc4hw4_s2 4x4x4x4x4x3x3x4.

// The configurations, as IREE's attributes (printed as aliases before the module):
// CHECK-DAG:   #[[L1X1:.+]] = #iree_codegen.lowering_config<tile_sizes = {{\[}}[2, 16, 4], [1, 2, 4], [0, 0, 0, 1, 4]]>
// CHECK-DAG:   #[[L2D:.+]] = #iree_codegen.lowering_config<tile_sizes = {{\[}}[2, 2, 4, 4], [0, 1, 1, 4], [0, 0, 0, 0, 1, 4]]>
// CHECK-DAG:   #[[LS2:.+]] = #iree_codegen.lowering_config<tile_sizes = {{\[}}[2, 4, 4, 4], [0, 1, 1, 4], [0, 0, 0, 0, 1, 1, 1, 4]]>
// CHECK-DAG:   #[[T1X1:.+]] = #iree_codegen.translation_info<pipeline = #iree_gpu.spirv_pipeline<BaseVectorize> workgroup_size = [1, 8, 2]>
// CHECK-DAG:   #[[T2D:.+]] = #iree_codegen.translation_info<pipeline = #iree_gpu.spirv_pipeline<BaseVectorize> workgroup_size = [1, 4, 2]>
// CHECK-DAG:   #[[TS2:.+]] = #iree_codegen.translation_info<pipeline = #iree_gpu.spirv_pipeline<BaseVectorize> workgroup_size = [1, 4, 4]>
// CHECK-DAG:   #[[C1X1:.+]] = #iree_codegen.compilation_info<lowering_config = #[[L1X1]], translation_info = #[[T1X1]]>
// CHECK-DAG:   #[[C2D:.+]] = #iree_codegen.compilation_info<lowering_config = #[[L2D]], translation_info = #[[T2D]]>
// CHECK-DAG:   #[[CS2:.+]] = #iree_codegen.compilation_info<lowering_config = #[[LS2]], translation_info = #[[TS2]]>

// A 1x1 convolution of the tuned shape: the dispatch's op, pixels collapsed, gets the table's
// configuration and is otherwise untouched.
// CHECK-LABEL: func.func @tuned_dispatch_0_
// CHECK:       linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "parallel", "reduction", "reduction"]
// CHECK-SAME:    ins(%{{.+}}, %{{.+}} : tensor<4x64x4xf32>, tensor<8x4x4x4xf32>) outs(%{{.+}} : tensor<8x64x4xf32>)
// CHECK-SAME:    attrs = {compilation_info = #[[C1X1]]}

// A 1x1 convolution of another shape (4 filter blocks, 4x4 pixels) whose loops the tuned tiles
// divide: configured from the nearest tuned shape; with nearest=false left to IREE.
// CHECK-LABEL: func.func @nearest_dispatch_0_
// CHECK:       linalg.generic {{.*}}outs(%{{.+}} : tensor<4x16x4xf32>)
// CHECK-SAME:    attrs = {compilation_info = #[[C1X1]]}
// EXACT-LABEL: func.func @tuned_dispatch_0_
// EXACT:       linalg.generic {{.*}}compilation_info
// EXACT-LABEL: func.func @nearest_dispatch_0_
// EXACT-NOT:   compilation_info
// EXACT-LABEL: func.func @padded_dispatch_

// A 1x1 convolution IREE writes into the padded buffer of the 3x3 convolution after it keeps
// two pixel loops (conv1x1_nc4hw4_2d), and it is configured too; the padding copy stays fused
// (the result is stored into the padded buffer's interior); the 3x3 stride-1 convolution has
// no entry in the table and is left to IREE.
// CHECK-LABEL: func.func @padded_dispatch_0_
// CHECK:       linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction", "reduction"]
// CHECK-SAME:    outs(%{{.+}} : tensor<8x8x8x4xf32>)
// CHECK-SAME:    attrs = {compilation_info = #[[C2D]]}
// CHECK:       iree_tensor_ext.dispatch.tensor.store {{.*}} offsets = [0, 1, 1, 0], sizes = [8, 8, 8, 4]
// CHECK-LABEL: func.func @padded_dispatch_1_
// CHECK-NOT:   compilation_info
// CHECK:       return

// A 3x3 stride-2 convolution of the table's conv_nc4hw4_s2 shape is configured.
// CHECK-LABEL: func.func @conv3x3_s2_dispatch_0_
// CHECK:       linalg.generic {{.*}}ins(%{{.+}}, %{{.+}} : tensor<4x9x9x4xf32>, tensor<4x4x3x3x4x4xf32>) outs(%{{.+}} : tensor<4x4x4x4xf32>)
// CHECK-SAME:    attrs = {compilation_info = #[[CS2]]}

// A 1x1 convolution whose pixel loop (5x5) no tuned tile divides: left to IREE.
// CHECK-LABEL: func.func @no_fit_dispatch_0_
// CHECK-NOT:   compilation_info
// CHECK:       return

// The configuration reaches IREE's executable configuration: without it IREE 3.13 configures
// the 1x1 convolution as SubgroupReduce.
// IREE-LABEL: func.func @tuned_dispatch_0_
// IREE-SAME:    translation_info = #iree_codegen.translation_info<pipeline = #iree_gpu.spirv_pipeline<BaseVectorize> workgroup_size = [1, 8, 2]>
// IREE:         linalg.generic
// IREE-SAME:    lowering_config = #iree_codegen.lowering_config<tile_sizes = {{\[}}[2, 16, 4], [1, 2, 4], [0, 0, 0, 1, 4]]>
// IREE-LABEL: func.func @padded_dispatch_0_
// IREE-SAME:    workgroup_size = [1, 4, 2]

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

func.func @nearest(%x: tensor<1x4x4x4x4xf32>, %w: tensor<4x4x1x1x4x4xf32>) -> tensor<1x4x4x4x4xf32> {
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

func.func @padded(%x: tensor<1x4x8x8x4xf32>, %w: tensor<8x4x1x1x4x4xf32>, %w3: tensor<8x8x3x3x4x4xf32>) -> tensor<1x8x8x8x4xf32> {
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
  %p = tensor.pad %r low[0, 0, 1, 1, 0] high[0, 0, 1, 1, 0] {
  ^bb0(%a0: index, %a1: index, %a2: index, %a3: index, %a4: index):
    tensor.yield %z : f32
  } : tensor<1x8x8x8x4xf32> to tensor<1x8x10x10x4xf32>
  %r2 = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel", "reduction", "reduction", "reduction", "reduction"]}
      ins(%p, %w3 : tensor<1x8x10x10x4xf32>, tensor<8x8x3x3x4x4xf32>) outs(%i : tensor<1x8x8x8x4xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %m = arith.mulf %a, %b : f32
    %s = arith.addf %o, %m : f32
    linalg.yield %s : f32
  } -> tensor<1x8x8x8x4xf32>
  return %r2 : tensor<1x8x8x8x4xf32>
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

func.func @no_fit(%x: tensor<1x4x5x5x4xf32>, %w: tensor<8x4x1x1x4x4xf32>) -> tensor<1x8x5x5x4xf32> {
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
