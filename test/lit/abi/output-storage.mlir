// RUN: texflow-opt --pass-pipeline='builtin.module(texflow-abi-output-storage)' %s | FileCheck %s
// RUN: texflow-opt --pass-pipeline='builtin.module(texflow-abi-output-storage)' %s | iree-compile - --iree-hal-target-device=local --iree-hal-local-target-device-backends=llvm-cpu --iree-llvmcpu-target-cpu=generic -o /dev/null

// texflow-abi-output-storage on entry points as IREE's input phase wraps them.
// `f$async` gains a storage buffer per result, after its fences; each result is
// aliased to its buffer before the barrier that signals the call's fence.
// CHECK-LABEL: util.func public @f$async(
// CHECK-SAME:    %[[X:.+]]: !hal.buffer_view, %[[WAIT:.+]]: !hal.fence, %[[SIGNAL:.+]]: !hal.fence, %[[S0:.+]]: !hal.buffer, %[[S1:.+]]: !hal.buffer)
// CHECK:         %[[A:.+]] = hal.tensor.alias wait(%[[WAIT]]) => %{{.+}} : tensor<2x3xf32> to %[[S0]] : !hal.buffer
// CHECK:         %[[B:.+]] = hal.tensor.alias wait(%[[WAIT]]) => %{{.+}} : tensor<5xi64> to %[[S1]] : !hal.buffer
// CHECK:         hal.tensor.barrier join(%[[A]], %[[B]] : tensor<2x3xf32>, tensor<5xi64>) => %[[SIGNAL]] : !hal.fence
//
// `f` keeps its signature and allocates the storage (2x3xf32: 24 bytes; 5xi64: 40).
// CHECK-LABEL: util.func public @f(
// CHECK-SAME:    -> (!hal.buffer_view, !hal.buffer_view)
// CHECK:         %[[N0:.+]] = arith.constant 24 : index
// CHECK:         %[[B0:.+]] = hal.allocator.allocate<%{{.+}} : !hal.allocator> {{.*}} : !hal.buffer{%[[N0]]}
// CHECK:         %[[N1:.+]] = arith.constant 40 : index
// CHECK:         %[[B1:.+]] = hal.allocator.allocate<%{{.+}} : !hal.allocator> {{.*}} : !hal.buffer{%[[N1]]}
// CHECK:         util.call @f$async(%{{.+}}, %{{.+}}, %{{.+}}, %[[B0]], %[[B1]])
//
// `f$into` takes the storage from its caller.
// CHECK-LABEL: util.func public @f$into(
// CHECK-SAME:    %[[IX:.+]]: !hal.buffer_view, %[[I0:.+]]: !hal.buffer, %[[I1:.+]]: !hal.buffer) -> (!hal.buffer_view, !hal.buffer_view)
// CHECK-NOT:     hal.allocator.allocate
// CHECK:         util.call @f$async(%[[IX]], %{{.+}}, %{{.+}}, %[[I0]], %[[I1]])
// CHECK:         hal.fence.await
//
// A dynamically shaped result has no size to allocate: `g` is left as it was.
// CHECK-LABEL: util.func public @g$async(
// CHECK-SAME:    %{{.+}}: !hal.buffer_view, %{{.+}}: !hal.fence, %{{.+}}: !hal.fence) -> !hal.buffer_view
// CHECK-NOT:     hal.tensor.alias
// CHECK-NOT:     @g$into

util.func public @f$async(%arg0: !hal.buffer_view, %arg1: !hal.fence, %arg2: !hal.fence) -> (!hal.buffer_view, !hal.buffer_view) attributes {inlining_policy = #util.inline.never, iree.abi.model = "coarse-fences", iree.abi.stub} {
  %x = hal.tensor.import wait(%arg1) => %arg0 : !hal.buffer_view -> tensor<2x3xf32>
  %c = arith.constant dense<1.0> : tensor<2x3xf32>
  %y = arith.addf %x, %c : tensor<2x3xf32>
  %i = arith.constant dense<[1, 2, 3, 4, 5]> : tensor<5xi64>
  %j = arith.addi %i, %i : tensor<5xi64>
  %b:2 = hal.tensor.barrier join(%y, %j : tensor<2x3xf32>, tensor<5xi64>) => %arg2 : !hal.fence
  %e0 = hal.tensor.export %b#0 : tensor<2x3xf32> -> !hal.buffer_view
  %e1 = hal.tensor.export %b#1 : tensor<5xi64> -> !hal.buffer_view
  util.return %e0, %e1 : !hal.buffer_view, !hal.buffer_view
}
util.func public @f(%arg0: !hal.buffer_view) -> (!hal.buffer_view, !hal.buffer_view) attributes {iree.abi.stub} {
  %0 = util.null : !hal.fence
  %c-1_i32 = arith.constant -1 : i32
  %c0 = arith.constant 0 : index
  %device_0 = hal.devices.get %c0 : !hal.device
  %fence = hal.fence.create device(%device_0 : !hal.device) flags("None") : !hal.fence
  %1:2 = util.call @f$async(%arg0, %0, %fence) : (!hal.buffer_view, !hal.fence, !hal.fence) -> (!hal.buffer_view, !hal.buffer_view)
  %status = hal.fence.await until([%fence]) timeout_millis(%c-1_i32) flags("None") : i32
  util.return %1#0, %1#1 : !hal.buffer_view, !hal.buffer_view
}

util.func public @g$async(%arg0: !hal.buffer_view, %arg1: !hal.fence, %arg2: !hal.fence) -> !hal.buffer_view attributes {inlining_policy = #util.inline.never, iree.abi.model = "coarse-fences", iree.abi.stub} {
  %d = hal.buffer_view.dim<%arg0 : !hal.buffer_view>[0] : index
  %x = hal.tensor.import wait(%arg1) => %arg0 : !hal.buffer_view -> tensor<?xf32>{%d}
  %y = arith.addf %x, %x : tensor<?xf32>
  %b = hal.tensor.barrier join(%y : tensor<?xf32>) => %arg2 : !hal.fence
  %e = hal.tensor.export %b : tensor<?xf32>{%d} -> !hal.buffer_view
  util.return %e : !hal.buffer_view
}
util.func public @g(%arg0: !hal.buffer_view) -> !hal.buffer_view attributes {iree.abi.stub} {
  %0 = util.null : !hal.fence
  %c-1_i32 = arith.constant -1 : i32
  %c0 = arith.constant 0 : index
  %device_0 = hal.devices.get %c0 : !hal.device
  %fence = hal.fence.create device(%device_0 : !hal.device) flags("None") : !hal.fence
  %1 = util.call @g$async(%arg0, %0, %fence) : (!hal.buffer_view, !hal.fence, !hal.fence) -> !hal.buffer_view
  %status = hal.fence.await until([%fence]) timeout_millis(%c-1_i32) flags("None") : i32
  util.return %1 : !hal.buffer_view
}
