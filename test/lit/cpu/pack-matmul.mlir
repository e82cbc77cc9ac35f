// texflow-pack-matmul: a matmul whose weight is a constant becomes linalg.mmt4d on a weight
// tiled at compile time; a matmul of two computed operands (attention) packs both at run time;
// a small-image convolution becomes im2col + mmt4d.  Tiles fixed to 16x16x1 (AVX-512's).

// RUN: texflow-opt --pass-pipeline='builtin.module(texflow-pack-matmul{tiles=16x16x1 min-flops=0 min-dynamic-fill=0})' %s | FileCheck %s
// RUN: texflow-opt --pass-pipeline='builtin.module(texflow-pack-matmul{tiles=16x16x1 min-flops=0})' %s | FileCheck %s --check-prefix=FILL
// RUN: texflow-opt --pass-pipeline='builtin.module(texflow-pack-matmul{tiles=16x16x1 min-flops=0})' --texflow-statistics -o /dev/null %s 2>&1 | FileCheck %s --check-prefix=FILLSTAT
// RUN: texflow-opt --pass-pipeline='builtin.module(texflow-pack-matmul{tiles=16x16x1})' %s | FileCheck %s --check-prefix=SMALL
// RUN: texflow-opt --pass-pipeline='builtin.module(texflow-pack-matmul{tiles=16x16x1 min-flops=0 max-result-bytes=8192 chunk-above-bytes=0})' --texflow-statistics %s 2>&1 | FileCheck %s --check-prefix=CHUNK
// RUN: texflow-opt --pass-pipeline='builtin.module(texflow-pack-matmul{tiles=16x16x1 min-flops=0 max-result-bytes=8192 chunk-above-bytes=32768})' %s | FileCheck %s --check-prefix=WHOLE
// RUN: texflow-opt --pass-pipeline='builtin.module(texflow-pack-matmul{tiles=8x8x1 min-flops=0 min-reduction=0 max-conv-rows=0})' %s | FileCheck %s --check-prefix=AVX2
// AVX2-DAG: #[[PATCHPERM:.*]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d3, d2, d4, d5)>
// AVX2-DAG: #[[NCHWPERM:.*]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d3, d1, d4, d2)>

// A 20x24 by 24x40 matmul: rows padded to two tiles of 16, the 40 columns to three of 16 (the
// weight's padding is zeros written at compile time), the result unpacked to 20x40.
// CHECK-LABEL: func.func @dense
// CHECK: %[[A:.*]] = linalg.pack %arg0 padding_value(%{{.*}} : f32) inner_dims_pos = [0, 1] inner_tiles = [16, 1] into %{{.*}} : tensor<20x24xf32> -> tensor<2x24x16x1xf32>
// CHECK: %[[W:.*]] = arith.constant dense<{{.*}}> : tensor<3x24x16x1xf32>
// CHECK: %[[Z:.*]] = linalg.fill {{.*}} -> tensor<2x3x16x16xf32>
// CHECK: %[[R:.*]] = linalg.mmt4d ins(%[[A]], %[[W]] : tensor<2x24x16x1xf32>, tensor<3x24x16x1xf32>) outs(%[[Z]] : tensor<2x3x16x16xf32>)
// CHECK: linalg.unpack %[[R]] inner_dims_pos = [0, 1] inner_tiles = [16, 16] into %{{.*}} : tensor<2x3x16x16xf32> -> tensor<20x40xf32>
// CHECK-NOT: linalg.matmul
// Too small for the default min-flops (2*20*24*40 < 2^20): left alone.
// SMALL-LABEL: func.func @dense
// SMALL: linalg.matmul
// SMALL-NOT: linalg.mmt4d
func.func @dense(%a: tensor<20x24xf32>) -> tensor<20x40xf32> {
  %w = arith.constant dense<0.5> : tensor<24x40xf32>
  %z = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<20x40xf32>
  %f = linalg.fill ins(%z : f32) outs(%e : tensor<20x40xf32>) -> tensor<20x40xf32>
  %r = linalg.matmul ins(%a, %w : tensor<20x24xf32>, tensor<24x40xf32>) outs(%f : tensor<20x40xf32>) -> tensor<20x40xf32>
  return %r : tensor<20x40xf32>
}

// ONNX MatMul on 3-D activations arrives as a batch matmul of a broadcast weight: the
// broadcast is evaluated at compile time, the activations collapsed to rows.  Five rows take
// a narrow tile of 8.
// CHECK-LABEL: func.func @broadcast_weight
// CHECK: tensor.collapse_shape %arg0 {{\[}}[0, 1], [2]] : tensor<1x5x32xf32> into tensor<5x32xf32>
// CHECK: linalg.pack {{.*}} inner_tiles = [8, 1] {{.*}} -> tensor<1x32x8x1xf32>
// CHECK: arith.constant dense<{{.*}}> : tensor<1x32x16x1xf32>
// CHECK: linalg.mmt4d
// CHECK: tensor.expand_shape {{.*}} : tensor<5x16xf32> into tensor<1x5x16xf32>
// CHECK-NOT: linalg.batch_matmul
#bcast = affine_map<(d0, d1, d2) -> (d1, d2)>
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @broadcast_weight(%a: tensor<1x5x32xf32>) -> tensor<1x5x16xf32> {
  %w = arith.constant dense<0.25> : tensor<32x16xf32>
  %eb = tensor.empty() : tensor<1x32x16xf32>
  %b = linalg.generic {indexing_maps = [#bcast, #id3], iterator_types = ["parallel", "parallel", "parallel"]} ins(%w : tensor<32x16xf32>) outs(%eb : tensor<1x32x16xf32>) {
  ^bb0(%in: f32, %out: f32):
    linalg.yield %in : f32
  } -> tensor<1x32x16xf32>
  %z = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<1x5x16xf32>
  %f = linalg.fill ins(%z : f32) outs(%e : tensor<1x5x16xf32>) -> tensor<1x5x16xf32>
  %r = linalg.batch_matmul ins(%a, %b : tensor<1x5x32xf32>, tensor<1x32x16xf32>) outs(%f : tensor<1x5x16xf32>) -> tensor<1x5x16xf32>
  return %r : tensor<1x5x16xf32>
}

// A Linear layer on 4-D activations (Swin's windows, ConvNeXt's rows): one weight broadcast
// over 3 batches.  The batches become rows of one matmul (3*5 = 15 rows, one tile of 16) and
// the weight is packed once, at compile time; packing the broadcast at run time would pack
// the same weight 3 times on every call.
// CHECK-LABEL: func.func @batch_broadcast_weight
// CHECK: tensor.collapse_shape %arg0 {{\[}}[0, 1], [2]] : tensor<3x5x32xf32> into tensor<15x32xf32>
// CHECK: linalg.pack {{.*}} inner_tiles = [16, 1] {{.*}} -> tensor<1x32x16x1xf32>
// CHECK: arith.constant dense<{{.*}}> : tensor<1x32x16x1xf32>
// CHECK: linalg.mmt4d
// CHECK: tensor.expand_shape {{.*}} : tensor<15x16xf32> into tensor<3x5x16xf32>
// CHECK-NOT: linalg.batch_mmt4d
// CHECK: return
func.func @batch_broadcast_weight(%a: tensor<3x5x32xf32>) -> tensor<3x5x16xf32> {
  %w = arith.constant dense<0.25> : tensor<32x16xf32>
  %eb = tensor.empty() : tensor<3x32x16xf32>
  %b = linalg.generic {indexing_maps = [#bcast, #id3], iterator_types = ["parallel", "parallel", "parallel"]} ins(%w : tensor<32x16xf32>) outs(%eb : tensor<3x32x16xf32>) {
  ^bb0(%in: f32, %out: f32):
    linalg.yield %in : f32
  } -> tensor<3x32x16xf32>
  %z = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<3x5x16xf32>
  %f = linalg.fill ins(%z : f32) outs(%e : tensor<3x5x16xf32>) -> tensor<3x5x16xf32>
  %r = linalg.batch_matmul ins(%a, %b : tensor<3x5x32xf32>, tensor<3x32x16xf32>) outs(%f : tensor<3x5x16xf32>) -> tensor<3x5x16xf32>
  return %r : tensor<3x5x16xf32>
}

// Attention's Q.K^T: no constant operand, so both sides are packed at run time; the right-hand
// side (K x N) is packed transposed (outer_dims_perm) into N-tiles.
// CHECK-LABEL: func.func @attention_scores
// CHECK: linalg.pack %arg0 {{.*}} inner_dims_pos = [1, 2] inner_tiles = [16, 1] {{.*}} -> tensor<4x4x64x16x1xf32>
// CHECK: linalg.pack %arg1 {{.*}} outer_dims_perm = [0, 2, 1] inner_dims_pos = [2, 1] inner_tiles = [16, 1] {{.*}} : tensor<4x64x50xf32> -> tensor<4x4x64x16x1xf32>
// CHECK: linalg.batch_mmt4d
// CHECK: linalg.unpack {{.*}} -> tensor<4x50x50xf32>
// With the default min-dynamic-fill (0.8), 50x50 scores in 16x16 tiles (61% of 64x64 real,
// Swin's 49-token windows) are left to IREE: packing both sides at run time cost 2x there.
// FILL-LABEL: func.func @attention_scores
// FILL: linalg.batch_matmul
// FILL-NOT: linalg.batch_mmt4d
// FILL: return
// FILLSTAT: texflow-pack-matmul: 1 matmuls left (tiles mostly padding, run-time operands)
func.func @attention_scores(%q: tensor<4x50x64xf32>, %k: tensor<4x64x50xf32>) -> tensor<4x50x50xf32> {
  %z = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<4x50x50xf32>
  %f = linalg.fill ins(%z : f32) outs(%e : tensor<4x50x50xf32>) -> tensor<4x50x50xf32>
  %r = linalg.batch_matmul ins(%q, %k : tensor<4x50x64xf32>, tensor<4x64x50xf32>) outs(%f : tensor<4x50x50xf32>) -> tensor<4x50x50xf32>
  return %r : tensor<4x50x50xf32>
}

// A 3x3 NHWC convolution on a 6x6 image: im2col rows (n, oh, ow) by columns (kh, kw, c), the
// HWCF filter read as a (3*3*16) x 32 matrix.  Tiles of 8 (AVX2's).  The patch matrix is built
// tap by tap (a strided slice of the input inserted at its (kh, kw)), which IREE copies with
// vector loads; a gather generic would be compiled to scalar code.
// AVX2-LABEL: func.func @conv3x3
// AVX2: %[[E:.*]] = tensor.empty() : tensor<1x6x6x3x3x16xf32>
// AVX2: %[[T0:.*]] = tensor.extract_slice %arg0[0, 0, 0, 0] [1, 6, 6, 16] [1, 1, 1, 1]
// AVX2: %[[C0:.*]] = tensor.insert_slice %[[T0]] into %[[E]][0, 0, 0, 0, 0, 0] [1, 6, 6, 1, 1, 16]
// AVX2: %[[T1:.*]] = tensor.extract_slice %arg0[0, 0, 1, 0] [1, 6, 6, 16] [1, 1, 1, 1]
// AVX2: %[[C1:.*]] = tensor.insert_slice %[[T1]] into %[[C0]][0, 0, 0, 0, 1, 0] [1, 6, 6, 1, 1, 16]
// AVX2: tensor.extract_slice %arg0[0, 2, 2, 0] [1, 6, 6, 16] [1, 1, 1, 1]
// AVX2: %[[C8:.*]] = tensor.insert_slice {{.*}}[0, 0, 0, 2, 2, 0] [1, 6, 6, 1, 1, 16]
// AVX2-NOT: linalg.generic
// AVX2: tensor.collapse_shape %[[C8]] {{.*}} : tensor<1x6x6x3x3x16xf32> into tensor<36x144xf32>
// AVX2: arith.constant dense<{{.*}}> : tensor<4x144x8x1xf32>
// AVX2: linalg.mmt4d
// AVX2: tensor.expand_shape {{.*}} : tensor<36x32xf32> into tensor<1x6x6x32xf32>
// AVX2-NOT: linalg.conv_2d_nhwc_hwcf
func.func @conv3x3(%x: tensor<1x8x8x16xf32>) -> tensor<1x6x6x32xf32> {
  %w = arith.constant dense<0.125> : tensor<3x3x16x32xf32>
  %z = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<1x6x6x32xf32>
  %f = linalg.fill ins(%z : f32) outs(%e : tensor<1x6x6x32xf32>) -> tensor<1x6x6x32xf32>
  %r = linalg.conv_2d_nhwc_hwcf {dilations = dense<1> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>} ins(%x, %w : tensor<1x8x8x16xf32>, tensor<3x3x16x32xf32>) outs(%f : tensor<1x6x6x32xf32>) -> tensor<1x6x6x32xf32>
  return %r : tensor<1x6x6x32xf32>
}

// A matmul that starts from a bias (how a convolution or Gemm with a bias is imported): the
// mmt4d still starts from zero and the bias is added after unpacking.  Packing the bias instead
// would be a constant expression that IREE hoists into an output-sized constant.
// CHECK-LABEL: func.func @bias_init
// CHECK: %[[B:.*]] = linalg.generic {{.*}} ins(%arg1 : tensor<40xf32>)
// CHECK: %[[Z:.*]] = linalg.fill {{.*}} -> tensor<2x3x16x16xf32>
// CHECK: %[[R:.*]] = linalg.mmt4d ins({{.*}}) outs(%[[Z]] : tensor<2x3x16x16xf32>)
// CHECK: %[[U:.*]] = linalg.unpack %[[R]]
// CHECK: linalg.generic {{.*}} ins(%[[U]], %[[B]] : tensor<20x40xf32>, tensor<20x40xf32>)
// CHECK: arith.addf
#col = affine_map<(d0, d1) -> (d1)>
#id2 = affine_map<(d0, d1) -> (d0, d1)>
func.func @bias_init(%a: tensor<20x24xf32>, %bias: tensor<40xf32>) -> tensor<20x40xf32> {
  %w = arith.constant dense<0.5> : tensor<24x40xf32>
  %e = tensor.empty() : tensor<20x40xf32>
  %b = linalg.generic {indexing_maps = [#col, #id2], iterator_types = ["parallel", "parallel"]} ins(%bias : tensor<40xf32>) outs(%e : tensor<20x40xf32>) {
  ^bb0(%in: f32, %out: f32):
    linalg.yield %in : f32
  } -> tensor<20x40xf32>
  %r = linalg.matmul ins(%a, %w : tensor<20x24xf32>, tensor<24x40xf32>) outs(%b : tensor<20x40xf32>) -> tensor<20x40xf32>
  return %r : tensor<20x40xf32>
}

// A result larger than max-result-bytes (here 64x96 floats = 24 KiB > 8 KiB) is written in
// column chunks: the weight is split at compile time, each chunk's tiles are unpacked into
// their columns, so the packed and unpacked results never exist whole at once.
// CHUNK: texflow-pack-matmul: 3 matmul results written in column chunks
// CHUNK-LABEL: func.func @logits
// CHUNK: %[[A:.*]] = linalg.pack %arg0 {{.*}} -> tensor<4x16x16x1xf32>
// CHUNK: %[[E:.*]] = tensor.empty() : tensor<64x96xf32>
// CHUNK: %[[W0:.*]] = arith.constant dense<{{.*}}> : tensor<2x16x16x1xf32>
// CHUNK: %[[R0:.*]] = linalg.mmt4d ins(%[[A]], %[[W0]] : {{.*}}) outs(%{{.*}} : tensor<4x2x16x16xf32>)
// CHUNK: %[[U0:.*]] = linalg.unpack %[[R0]] {{.*}} -> tensor<64x32xf32>
// CHUNK: %[[I0:.*]] = tensor.insert_slice %[[U0]] into %[[E]][0, 0] [64, 32] [1, 1]
// CHUNK: linalg.mmt4d
// CHUNK: %[[I1:.*]] = tensor.insert_slice %{{.*}} into %[[I0]][0, 32] [64, 32] [1, 1]
// CHUNK: linalg.mmt4d
// CHUNK: %[[I2:.*]] = tensor.insert_slice %{{.*}} into %[[I1]][0, 64] [64, 32] [1, 1]
// CHUNK: return %[[I2]]
// A result at most chunk-above-bytes (24 KiB <= 32 KiB) is one piece: each chunk would cost
// a copy, which only pays for results large enough to matter to the peak (an LM head's).
// WHOLE-LABEL: func.func @logits
// WHOLE: linalg.mmt4d {{.*}} outs(%{{.*}} : tensor<4x6x16x16xf32>)
// WHOLE-NOT: linalg.mmt4d
// WHOLE-NOT: tensor.insert_slice
// WHOLE: return
func.func @logits(%a: tensor<64x16xf32>) -> tensor<64x96xf32> {
  %w = arith.constant dense<0.25> : tensor<16x96xf32>
  %z = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<64x96xf32>
  %f = linalg.fill ins(%z : f32) outs(%e : tensor<64x96xf32>) -> tensor<64x96xf32>
  %r = linalg.matmul ins(%a, %w : tensor<64x16xf32>, tensor<16x96xf32>) outs(%f : tensor<64x96xf32>) -> tensor<64x96xf32>
  return %r : tensor<64x96xf32>
}

// A convolution whose stride is its kernel (a ViT patch embedding): the patches do not overlap,
// so the patch matrix is the input reshaped and transposed (one permutation generic), not an
// im2col of 16x16 = 256 tap copies.
// AVX2-LABEL: func.func @patch_embed
// AVX2: %[[X:.*]] = tensor.expand_shape %{{.*}} {{\[\[}}0], [1, 2], [3, 4], [5]] output_shape [1, 2, 16, 2, 16, 3] : tensor<1x32x32x3xf32> into tensor<1x2x16x2x16x3xf32>
// AVX2: %[[T:.*]] = linalg.generic {indexing_maps = [#[[PATCHPERM]], #{{.*}}], {{.*}} ins(%[[X]] : tensor<1x2x16x2x16x3xf32>) outs({{.*}} : tensor<1x2x2x16x16x3xf32>)
// AVX2: tensor.collapse_shape %[[T]] {{.*}} into tensor<4x768xf32>
// AVX2-NOT: tensor.insert_slice
// AVX2: linalg.mmt4d
func.func @patch_embed(%x: tensor<1x32x32x3xf32>) -> tensor<1x2x2x8xf32> {
  %w = arith.constant dense<0.125> : tensor<16x16x3x8xf32>
  %z = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<1x2x2x8xf32>
  %f = linalg.fill ins(%z : f32) outs(%e : tensor<1x2x2x8xf32>) -> tensor<1x2x2x8xf32>
  %r = linalg.conv_2d_nhwc_hwcf {dilations = dense<1> : tensor<2xi64>, strides = dense<16> : tensor<2xi64>} ins(%x, %w : tensor<1x32x32x3xf32>, tensor<16x16x3x8xf32>) outs(%f : tensor<1x2x2x8xf32>) -> tensor<1x2x2x8xf32>
  return %r : tensor<1x2x2x8xf32>
}

// The same in NCHW (ConvNeXt's 2x2 downsampling layers, left NCHW): the patch matrix
// [C*KH*KW, OH*OW] is the input reshaped to [C, OH, KH, OW, KW] and transposed to
// [C, KH, KW, OH, OW], one generic, not a strided copy per filter tap.
// AVX2-LABEL: func.func @patch_embed_nchw
// AVX2: %[[X:.*]] = tensor.expand_shape %{{.*}} {{\[\[}}0], [1, 2], [3, 4]] output_shape [8, 4, 2, 4, 2] : tensor<8x8x8xf32> into tensor<8x4x2x4x2xf32>
// AVX2: %[[T:.*]] = linalg.generic {indexing_maps = [#[[NCHWPERM]], #{{.*}}], {{.*}} ins(%[[X]] : tensor<8x4x2x4x2xf32>) outs({{.*}} : tensor<8x2x2x4x4xf32>)
// AVX2: tensor.collapse_shape %[[T]] {{.*}} into tensor<32x16xf32>
// AVX2-NOT: tensor.insert_slice
// AVX2: linalg.mmt4d
func.func @patch_embed_nchw(%x: tensor<1x8x8x8xf32>) -> tensor<1x16x4x4xf32> {
  %w = arith.constant dense<0.125> : tensor<16x8x2x2xf32>
  %z = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<1x16x4x4xf32>
  %f = linalg.fill ins(%z : f32) outs(%e : tensor<1x16x4x4xf32>) -> tensor<1x16x4x4xf32>
  %r = linalg.conv_2d_nchw_fchw {dilations = dense<1> : tensor<2xi64>, strides = dense<2> : tensor<2xi64>} ins(%x, %w : tensor<1x8x8x8xf32>, tensor<16x8x2x2xf32>) outs(%f : tensor<1x16x4x4xf32>) -> tensor<1x16x4x4xf32>
  return %r : tensor<1x16x4x4xf32>
}
