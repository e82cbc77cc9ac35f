// RUN: texflow-opt --pass-pipeline='builtin.module(texflow-wstream-plan{memory-budget=40KiB chunk-bytes=256},texflow-wstream-fence,texflow-verify-lowered)' %s | FileCheck %s
// RUN: texflow-opt --pass-pipeline='builtin.module(texflow-wstream-plan{memory-budget=40KiB chunk-bytes=256},texflow-wstream-fence)' %s | iree-compile - --iree-hal-target-device=local --iree-hal-local-target-device-backends=llvm-cpu -o /dev/null

// texflow-wstream-fence keeps the planned function whole.  Preloaded weights
// (w1, w2) are subspans of the preload buffer; streamed ones (w3, w4) are
// subspans of the arena, each imported behind its group's ready fence (the
// runtime signals it once the group is loaded).  w4 reuses w3's bytes, so a
// barrier after w3's last stage signals a release fence the runtime waits
// for before it writes w4.  The synchronous wrapper is gone (the runtime
// calls f$async) and no weight constant is left in use.
// CHECK-LABEL: util.func public @f$async(
// CHECK-SAME: %[[X:[^:]*]]: !hal.buffer_view, %[[WAIT:[^:]*]]: !hal.fence, %[[SIG:[^:]*]]: !hal.fence,
// CHECK-SAME: %[[PRE:[^:]*]]: !hal.buffer, %[[ARENA:[^:]*]]: !hal.buffer,
// CHECK-SAME: %[[R3:[^:]*]]: !hal.fence, %[[R4:[^:]*]]: !hal.fence,
// CHECK-SAME: %[[REL2:[^:]*]]: !hal.fence, %[[REL3:[^:]*]]: !hal.fence)
// CHECK-SAME: texflow.wstream.program = "{{.*}}\22mode\22: \22fenced\22
// CHECK: %[[B1:.*]] = hal.buffer.subspan<%[[PRE]] : !hal.buffer>[%{{.*}}, %{{.*}}] : !hal.buffer
// CHECK: %[[W1:.*]] = hal.tensor.import %[[B1]] : !hal.buffer -> tensor<16x64xf32>
// CHECK: linalg.matmul ins(%{{.*}}, %[[W1]] :
// CHECK: %[[B3:.*]] = hal.buffer.subspan<%[[ARENA]] : !hal.buffer>[%c0{{[_0-9]*}}, %c16384{{[_0-9]*}}] : !hal.buffer
// CHECK: %[[W3:.*]] = hal.tensor.import wait(%[[R3]]) => %[[B3]] : !hal.buffer -> tensor<64x64xf32>
// CHECK: %[[M3:.*]] = linalg.matmul ins(%{{.*}}, %[[W3]] :
// CHECK: %[[M3B:.*]] = hal.tensor.barrier join(%[[M3]] : tensor<4x64xf32>) => %[[REL2]] : !hal.fence
// CHECK: %[[B4:.*]] = hal.buffer.subspan<%[[ARENA]] : !hal.buffer>[%c0{{[_0-9]*}}, %c4096{{[_0-9]*}}] : !hal.buffer
// CHECK: %[[W4:.*]] = hal.tensor.import wait(%[[R4]]) => %[[B4]] : !hal.buffer -> tensor<64x16xf32>
// CHECK: %[[M4:.*]] = linalg.matmul ins(%[[M3B]], %[[W4]] :
// CHECK: hal.tensor.barrier join(%[[M4]] : tensor<4x16xf32>) => %[[REL3]] : !hal.fence
// CHECK: hal.tensor.barrier join({{.*}}) => %[[SIG]] : !hal.fence
// CHECK-NOT: wstream.
// CHECK-NOT: util.func public @f(
util.func public @f$async(%arg0: !hal.buffer_view, %wait: !hal.fence, %signal: !hal.fence) -> !hal.buffer_view {
  %x = hal.tensor.import wait(%wait) => %arg0 : !hal.buffer_view -> tensor<4x16xf32>
  %cst = arith.constant 0.000000e+00 : f32
  %w1 = arith.constant dense<0.5> : tensor<16x64xf32>
  %w2 = arith.constant dense<0.25> : tensor<64x64xf32>
  %w3 = arith.constant dense<0.125> : tensor<64x64xf32>
  %w4 = arith.constant dense<0.0625> : tensor<64x16xf32>
  %e1 = tensor.empty() : tensor<4x64xf32>
  %f1 = linalg.fill ins(%cst : f32) outs(%e1 : tensor<4x64xf32>) -> tensor<4x64xf32>
  %1 = linalg.matmul ins(%x, %w1 : tensor<4x16xf32>, tensor<16x64xf32>) outs(%f1 : tensor<4x64xf32>) -> tensor<4x64xf32>
  %2 = linalg.matmul ins(%1, %w2 : tensor<4x64xf32>, tensor<64x64xf32>) outs(%f1 : tensor<4x64xf32>) -> tensor<4x64xf32>
  %3 = linalg.matmul ins(%2, %w3 : tensor<4x64xf32>, tensor<64x64xf32>) outs(%f1 : tensor<4x64xf32>) -> tensor<4x64xf32>
  %e4 = tensor.empty() : tensor<4x16xf32>
  %f4 = linalg.fill ins(%cst : f32) outs(%e4 : tensor<4x16xf32>) -> tensor<4x16xf32>
  %4 = linalg.matmul ins(%3, %w4 : tensor<4x64xf32>, tensor<64x16xf32>) outs(%f4 : tensor<4x16xf32>) -> tensor<4x16xf32>
  %5 = hal.tensor.barrier join(%4 : tensor<4x16xf32>) => %signal : !hal.fence
  %6 = hal.tensor.export %5 : tensor<4x16xf32> -> !hal.buffer_view
  util.return %6 : !hal.buffer_view
}
util.func public @f(%arg0: !hal.buffer_view) -> !hal.buffer_view attributes {iree.abi.stub} {
  %c0 = arith.constant 0 : index
  %0 = util.null : !hal.fence
  %device = hal.devices.get %c0 : !hal.device
  %fence = hal.fence.create device(%device : !hal.device) flags("None") : !hal.fence
  %1 = util.call @f$async(%arg0, %0, %fence) : (!hal.buffer_view, !hal.fence, !hal.fence) -> !hal.buffer_view
  %c-1_i32 = arith.constant -1 : i32
  %status = hal.fence.await until([%fence]) timeout_millis(%c-1_i32) flags("None") : i32
  util.return %1 : !hal.buffer_view
}
