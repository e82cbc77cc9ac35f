// IRDL description of texflow's `layout` dialect (SmartMem's layout
// transformations and quadrant traits).  Load it into iree-opt to verify
// texflow's output structurally:  iree-opt --irdl-file=dialects/layout.irdl.mlir
// (the semantic checks -- permutation validity, element counts -- are the
// Python verifiers in dialects/layout.py, run by texflow-verify-layout).
irdl.dialect @layout {
  // An operator's SmartMem quadrant: input-layout dependent or independent,
  // variable or fixed output layout.  #layout.quadrant<"ild_var">
  irdl.attribute @quadrant {
    %0 = irdl.is "ild_var"
    %1 = irdl.is "ild_fixed"
    %2 = irdl.is "ili_var"
    %3 = irdl.is "ili_fixed"
    %4 = irdl.any_of(%0, %1, %2, %3)
    irdl.parameters(value: %4)
  }
  // A tensor's physical layout: the order of logical dims from outermost to
  // innermost, and an optional packed dim [dim, factor] (texel = 4 values).
  // #layout.physical<array<i64: 0, 2, 3, 1>, array<i64>>
  // #layout.physical<array<i64: 0, 1, 2, 3>, array<i64: 1, 4>>
  irdl.attribute @physical {
    %order = irdl.any
    %pack = irdl.any
    irdl.parameters(order: %order, pack: %pack)
  }
  // A layout transformation: kind = "permute" (with `permutation`, the
  // linalg.transpose convention) or "reshape" (row-major, shapes say how).
  irdl.operation @transform {
    %src = irdl.base "!builtin.tensor"
    %res = irdl.base "!builtin.tensor"
    %permute = irdl.is "permute"
    %reshape = irdl.is "reshape"
    %kind = irdl.any_of(%permute, %reshape)
    irdl.operands(source: %src)
    irdl.results(result: %res)
    irdl.attributes {"kind" = %kind}
  }
}
