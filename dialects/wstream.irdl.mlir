// IRDL description of texflow's `wstream` dialect (weight streaming, FlashMem).
// Lets `iree-opt --irdl-file=<this>` parse and verify texflow's planned IR in
// lit tests; texflow itself checks the semantic rules in dialects/wstream.py.
irdl.dialect @wstream {
  // Handle of one weight group's load; consumed by wait and release.
  irdl.type @token

  // The plan's summary, first op of a planned function.
  irdl.operation @plan {
    %int = irdl.base "#builtin.integer"
    %float = irdl.base "#builtin.float"
    %str = irdl.base "#builtin.string"
    irdl.attributes {
      "budget" = %int, "chunk_bytes" = %int, "status" = %str,
      "stall_s" = %float, "stall_bound_s" = %float, "compute_s" = %float,
      "preloaded_bytes" = %int, "streamed_bytes" = %int, "peak_bytes" = %int
    }
  }

  // Start of a stage (the unit that waits for its weights).
  irdl.operation @stage {
    %int = irdl.base "#builtin.integer"
    %float = irdl.base "#builtin.float"
    %str = irdl.base "#builtin.string"
    irdl.attributes { "id" = %int, "kind" = %str, "compute_s" = %float,
                      "capacity" = %int, "act_bytes" = %int }
  }

  // Start reading a weight group: preloaded, or streamed by `schedule`
  // (triples stage, chunks read while stalled, chunks read during compute).
  irdl.operation @load {
    %tok = irdl.base @wstream::@token
    %int = irdl.base "#builtin.integer"
    %bool = irdl.base "#builtin.bool"
    %arr = irdl.base "#builtin.dense_array"
    irdl.attributes { "group" = %int, "bytes" = %int, "chunks" = %int,
                      "preload" = %bool, "schedule" = %arr }
    irdl.results(token: %tok)
  }

  // Block until the group is resident; its results replace the weights.
  irdl.operation @wait {
    %tok = irdl.base @wstream::@token
    %any = irdl.any
    %int = irdl.base "#builtin.integer"
    irdl.attributes { "group" = %int, "stage" = %int }
    irdl.operands(token: %tok, weights: variadic %any)
    irdl.results(ready: variadic %any)
  }

  // The group's memory may be reused (after its last use).
  irdl.operation @release {
    %tok = irdl.base @wstream::@token
    %int = irdl.base "#builtin.integer"
    irdl.attributes { "group" = %int, "stage" = %int }
    irdl.operands(token: %tok)
  }
}
