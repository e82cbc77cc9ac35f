"""The data-movement classifier on hand-written flow-level dispatch IR (no compiler needed)."""

import pytest

from texflow.bench.classify import classify_body, label_of, op_family, summarize

MAPS = """
#map = affine_map<(d0, d1) -> (d0, d1)>
#map1 = affine_map<(d0, d1) -> (d1, d0)>
#map2 = affine_map<(d0, d1) -> (d1)>
"""

TRANSPOSE = """{
  %0 = iree_tensor_ext.dispatch.tensor.load %arg0, offsets = [0, 0], sizes = [16, 8], strides = [1, 1] : !iree_tensor_ext.dispatch.tensor<readonly:tensor<16x8xf32>> -> tensor<16x8xf32>
  %1 = tensor.empty() : tensor<8x16xf32>
  %2 = linalg.generic {indexing_maps = [#map, #map1], iterator_types = ["parallel", "parallel"]} ins(%0 : tensor<16x8xf32>) outs(%1 : tensor<8x16xf32>) {
  ^bb0(%in: f32, %out: f32):
    linalg.yield %in : f32
  } -> tensor<8x16xf32>
  iree_tensor_ext.dispatch.tensor.store %2, %arg1, offsets = [0, 0], sizes = [8, 16], strides = [1, 1] : tensor<8x16xf32> -> !iree_tensor_ext.dispatch.tensor<writeonly:tensor<8x16xf32>>
  return
}"""

RELU = TRANSPOSE.replace("linalg.yield %in : f32", """%3 = arith.cmpf ugt, %in, %cst : f32
    %4 = arith.select %3, %in, %cst : f32
    linalg.yield %4 : f32""").replace("[#map, #map1]", "[#map, #map]")

# A transpose fused into a matmul's consumer is compute, not data movement.
MATMUL = """{
  %cst = arith.constant 0.000000e+00 : f32
  %0 = iree_tensor_ext.dispatch.tensor.load %arg0, offsets = [0, 0], sizes = [8, 16], strides = [1, 1] : !iree_tensor_ext.dispatch.tensor<readonly:tensor<8x16xf32>> -> tensor<8x16xf32>
  %1 = iree_tensor_ext.dispatch.tensor.load %arg1, offsets = [0, 0], sizes = [16, 32], strides = [1, 1] : !iree_tensor_ext.dispatch.tensor<readonly:tensor<16x32xf32>> -> tensor<16x32xf32>
  %2 = tensor.empty() : tensor<8x32xf32>
  %3 = linalg.fill ins(%cst : f32) outs(%2 : tensor<8x32xf32>) -> tensor<8x32xf32>
  %4 = linalg.matmul ins(%0, %1 : tensor<8x16xf32>, tensor<16x32xf32>) outs(%3 : tensor<8x32xf32>) -> tensor<8x32xf32>
  iree_tensor_ext.dispatch.tensor.store %4, %arg2, offsets = [0, 0], sizes = [8, 32], strides = [1, 1] : tensor<8x32xf32> -> !iree_tensor_ext.dispatch.tensor<writeonly:tensor<8x32xf32>>
  return
}"""

SLICE = """{
  %0 = iree_tensor_ext.dispatch.tensor.load %arg0, offsets = [0, 0, 768], sizes = [1, 128, 768], strides = [1, 1, 1] : !iree_tensor_ext.dispatch.tensor<readonly:tensor<1x128x2304xf32>> -> tensor<128x768xf32>
  iree_tensor_ext.dispatch.tensor.store %0, %arg1, offsets = [0, 0], sizes = [128, 768], strides = [1, 1] : tensor<128x768xf32> -> !iree_tensor_ext.dispatch.tensor<writeonly:tensor<128x768xf32>>
  return
}"""

INSERT = """{
  %0 = iree_tensor_ext.dispatch.tensor.load %arg0, offsets = [0, 0, 0], sizes = [3, 224, 224], strides = [1, 1, 1] : !iree_tensor_ext.dispatch.tensor<readonly:tensor<3x224x224xf32>> -> tensor<3x224x224xf32>
  iree_tensor_ext.dispatch.tensor.store %0, %arg1, offsets = [0, 3, 3], sizes = [3, 224, 224], strides = [1, 1, 1] : tensor<3x224x224xf32> -> !iree_tensor_ext.dispatch.tensor<readwrite:tensor<3x230x230xf32>>
  return
}"""

BROADCAST = TRANSPOSE.replace("[#map, #map1]", "[#map2, #map]").replace(
    "sizes = [16, 8], strides = [1, 1] : !iree_tensor_ext.dispatch.tensor<readonly:tensor<16x8xf32>> -> tensor<16x8xf32>",
    "sizes = [16], strides = [1] : !iree_tensor_ext.dispatch.tensor<readonly:tensor<16xf32>> -> tensor<16xf32>")

GATHER = """{
  %0 = iree_tensor_ext.dispatch.tensor.load %arg0, offsets = [0], sizes = [128], strides = [1] : !iree_tensor_ext.dispatch.tensor<readonly:tensor<128xi64>> -> tensor<128xi64>
  %1 = iree_tensor_ext.dispatch.tensor.load %arg1, offsets = [0, 0], sizes = [1000, 64], strides = [1, 1] : !iree_tensor_ext.dispatch.tensor<readonly:tensor<1000x64xf32>> -> tensor<1000x64xf32>
  %2 = tensor.empty() : tensor<128x64xf32>
  %3 = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} ins(%0 : tensor<128xi64>) outs(%2 : tensor<128x64xf32>) {
  ^bb0(%in: i64, %out: f32):
    %4 = arith.index_cast %in : i64 to index
    %5 = linalg.index 1 : index
    %extracted = tensor.extract %1[%4, %5] : tensor<1000x64xf32>
    linalg.yield %extracted : f32
  } -> tensor<128x64xf32>
  iree_tensor_ext.dispatch.tensor.store %3, %arg2, offsets = [0, 0], sizes = [128, 64], strides = [1, 1] : tensor<128x64xf32> -> !iree_tensor_ext.dispatch.tensor<writeonly:tensor<128x64xf32>>
  return
}"""

CAST = TRANSPOSE.replace("linalg.yield %in : f32", "%3 = arith.truncf %in : f32 to f16\n    linalg.yield %3 : f16")

PACK = """{
  %0 = iree_tensor_ext.dispatch.tensor.load %arg0, offsets = [0, 0], sizes = [64, 64], strides = [1, 1] : !iree_tensor_ext.dispatch.tensor<readonly:tensor<64x64xf32>> -> tensor<64x64xf32>
  %1 = tensor.empty() : tensor<4x64x16x1xf32>
  %pack = linalg.pack %0 outer_dims_perm = [0, 1] inner_dims_pos = [0, 1] inner_tiles = [16, 1] into %1 : tensor<64x64xf32> -> tensor<4x64x16x1xf32>
  iree_tensor_ext.dispatch.tensor.store %pack, %arg1, offsets = [0, 0, 0, 0], sizes = [4, 64, 16, 1], strides = [1, 1, 1, 1] : tensor<4x64x16x1xf32> -> !iree_tensor_ext.dispatch.tensor<writeonly:tensor<4x64x16x1xf32>>
  return
}"""

SOFTMAX = MATMUL.replace("linalg.matmul ins(%0, %1", "linalg.softmax dimension(1) ins(%0")


@pytest.mark.parametrize("body,dm,kind", [
    (TRANSPOSE, True, "transpose"),
    (RELU, False, None),
    (MATMUL, False, None),
    (SLICE, True, "slice"),
    (INSERT, True, "insert"),
    (BROADCAST, True, "broadcast"),
    (GATHER, True, "gather"),
    (CAST, False, None),
    (PACK, True, "pack"),
    (SOFTMAX, False, None),
])
def test_classify_body(body, dm, kind):
    from texflow.bench.classify import _affine_maps
    is_dm, k, ops = classify_body(body, _affine_maps(MAPS))
    assert (is_dm, k) == (dm, kind), ops


def test_identity_generic_is_copy():
    body = TRANSPOSE.replace("[#map, #map1]", "[#map, #map]")
    from texflow.bench.classify import _affine_maps
    assert classify_body(body, _affine_maps(MAPS))[:2] == (True, "copy")


def _exe(name, entry, body):
    return f"""  flow.executable private @{name} {{
    flow.executable.export public @{entry} workgroups() -> (index, index, index) {{
      %x, %y, %z = iree_tensor_ext.dispatch.workgroup_count_from_slice()
      flow.return %x, %y, %z : index, index, index
    }}
    builtin.module {{
      func.func @{entry}(%arg0: !iree_tensor_ext.dispatch.tensor<readonly:tensor<16x8xf32>>, %arg1: !iree_tensor_ext.dispatch.tensor<writeonly:tensor<8x16xf32>>) {body}
    }}
  }}
"""


PROGRAM = MAPS + "module {\n" + \
    _exe("g$async_dispatch_0", "g$async_dispatch_0_transpose_16x8_f32", TRANSPOSE) + \
    _exe("g$async_dispatch_1", "g$async_dispatch_1_matmul_8x32x16_f32", MATMUL) + \
    _exe("g$async_dispatch_2", "g$async_dispatch_2_slow_memcpy", INSERT) + \
    _exe("g$async_dispatch_3", "g$async_dispatch_3_slow_memcpy", INSERT) + """
  util.func public @g$async(%arg0: !hal.buffer_view, %arg1: !hal.fence, %arg2: !hal.fence) -> !hal.buffer_view {
    %cst = arith.constant 0.0 : f32
    %0 = hal.tensor.import wait(%arg1) => %arg0 : !hal.buffer_view -> tensor<1x16x8xf32>
    %1 = flow.tensor.reshape %0 : tensor<1x16x8xf32> -> tensor<16x8xf32>
    %2 = flow.dispatch @g$async_dispatch_0::@g$async_dispatch_0_transpose_16x8_f32(%1) : (tensor<16x8xf32>) -> tensor<8x16xf32>
    %3 = flow.tensor.reshape %2 : tensor<8x16xf32> -> tensor<8x16xf32>
    %4 = flow.dispatch @g$async_dispatch_1::@g$async_dispatch_1_matmul_8x32x16_f32(%3, %w) : (tensor<8x16xf32>, tensor<16x32xf32>) -> tensor<8x32xf32>
    %5 = flow.dispatch @g$async_dispatch_1::@g$async_dispatch_1_matmul_8x32x16_f32(%3, %w) : (tensor<8x16xf32>, tensor<16x32xf32>) -> tensor<8x32xf32>
    %6 = flow.tensor.splat %cst : tensor<3x230x230xf32>
    %7 = flow.dispatch @g$async_dispatch_2::@g$async_dispatch_2_slow_memcpy(%x, %6) : (tensor<3x224x224xf32>, tensor<3x230x230xf32>) -> %6
    %8 = flow.tensor.empty : tensor<6x224x224xf32>
    %9 = flow.dispatch @g$async_dispatch_3::@g$async_dispatch_3_slow_memcpy(%x, %8) : (tensor<3x224x224xf32>, tensor<6x224x224xf32>) -> %8
    %10 = hal.tensor.export %4 : tensor<8x32xf32> -> !hal.buffer_view
    util.return %10 : !hal.buffer_view
  }
}
"""


def test_summarize_counts_sites_and_consumers():
    s = summarize(PROGRAM)
    assert s.dispatches == 5  # the matmul executable is dispatched twice
    assert s.executables == 4
    assert s.data_movement == 3
    assert s.data_movement_executables == 3
    assert s.by_kind == {"pad": 1, "concat": 1, "transpose": 1}
    tr = [i for i in s.items if i.kind == "transpose"][0]
    assert tr.consumers == ["matmul_8x32x16_f32", "matmul_8x32x16_f32"]  # through the reshape
    assert s.feeding["transpose -> matmul"] == 1
    assert s.transfer_ops == {"splat": 1, "empty": 1}
    j = s.to_json()
    assert len(j["data_movement_dispatches"]) == 3 and "items" not in j


def test_labels():
    assert label_of("main$async_dispatch_12_batch_matmul_12x128x128x64_f32") == \
        "batch_matmul_12x128x128x64_f32"
    assert op_family("batch_matmul_12x128x128x64_f32") == "batch_matmul"
    assert op_family("elementwise_broadcast_128x768_f32") == "elementwise_broadcast"
    assert op_family("conv_64x112x112x3x7x7_f32") == "conv"
    assert op_family("slow_memcpy") == "slow_memcpy"


def test_empty_module():
    s = summarize("module {\n}\n")
    assert (s.dispatches, s.data_movement, s.executables) == (0, 0, 0)


def test_dispatch_report_counts_packs_and_permuting_compute():
    """texflow.bench.dispatches (issue 18's report) keeps texflow's packs apart from the other
    data movement and counts compute dispatches whose IREE name says transpose."""
    from texflow.bench.dispatches import count, markdown
    prog = PROGRAM.replace("g$async_dispatch_1_matmul_8x32x16_f32", "g$async_dispatch_1_matmul_transpose_b_8x32x16_f32")
    c = count(prog)
    assert (c["dispatches"], c["data_movement"], c["packs"], c["permuting_compute"]) == (5, 3, 0, 2)
    row = {"model": "m", "target": "llvm-cpu", "variants": {v: c for v in ("plain", "texflow-elim", "texflow")}}
    md = markdown([row], "today")
    assert "| m | llvm-cpu | 5 / 3 + 0 / 2 | 5 / 3 + 0 / 2 | 5 / 3 + 0 / 2 |" in md
    assert "| llvm-cpu | 5 | 5 | 5 |" in md  # 3 data movement + 2 permuting compute
