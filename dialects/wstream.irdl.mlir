// IRDL description of texflow's `wstream` dialect (weight streaming, FlashMem).
// Lets `iree-opt --irdl-file=<this>` parse and verify texflow's planned IR in lit
// tests; texflow checks the semantic rules itself (dialects/wstream.py).
irdl.dialect @wstream {
  // Handle of one weight group's load; consumed by wait and release.
  irdl.type @token

  // The plan's summary, first op of a planned function.
  irdl.operation @plan {
    %budget = irdl.base "#builtin.integer"
    %chunk_bytes = irdl.base "#builtin.integer"
    %status = irdl.base "#builtin.string"
    %stall_s = irdl.base "#builtin.float"
    %stall_bound_s = irdl.base "#builtin.float"
    %compute_s = irdl.base "#builtin.float"
    %preloaded_bytes = irdl.base "#builtin.integer"
    %streamed_bytes = irdl.base "#builtin.integer"
    %peak_bytes = irdl.base "#builtin.integer"
    irdl.attributes { "budget" = %budget, "chunk_bytes" = %chunk_bytes, "status" = %status, "stall_s" = %stall_s, "stall_bound_s" = %stall_bound_s, "compute_s" = %compute_s, "preloaded_bytes" = %preloaded_bytes, "streamed_bytes" = %streamed_bytes, "peak_bytes" = %peak_bytes }
  }

  // Start of a stage (the unit that waits for its weights).
  irdl.operation @stage {
    %id = irdl.base "#builtin.integer"
    %kind = irdl.base "#builtin.string"
    %compute_s = irdl.base "#builtin.float"
    %capacity_bytes = irdl.base "#builtin.integer"
    %act_bytes = irdl.base "#builtin.integer"
    irdl.attributes { "id" = %id, "kind" = %kind, "compute_s" = %compute_s, "capacity_bytes" = %capacity_bytes, "act_bytes" = %act_bytes }
  }

  // Start reading a weight group: preloaded (i1 `preload`), or streamed by `schedule`
  // (triples: stage, chunks read while stalled before it, chunks read during its compute).
  irdl.operation @load {
    %tok = irdl.base @wstream::@token
    %group = irdl.base "#builtin.integer"
    %bytes = irdl.base "#builtin.integer"
    %chunks = irdl.base "#builtin.integer"
    %preload = irdl.base "#builtin.integer"
    %schedule = irdl.base "#builtin.dense_array"
    irdl.attributes { "group" = %group, "bytes" = %bytes, "chunks" = %chunks, "preload" = %preload, "schedule" = %schedule }
    irdl.results(token: %tok)
  }

  // Block until the group is resident; the result (same type) replaces the weight.
  // One wait per weight of the group.
  irdl.operation @wait {
    %tok = irdl.base @wstream::@token
    %weight = irdl.any
    %group = irdl.base "#builtin.integer"
    %stage = irdl.base "#builtin.integer"
    irdl.attributes { "group" = %group, "stage" = %stage }
    irdl.operands(token: %tok, weight: %weight)
    irdl.results(ready: %weight)
  }

  // The group's memory may be reused (after its last use).
  irdl.operation @release {
    %tok = irdl.base @wstream::@token
    %group = irdl.base "#builtin.integer"
    %stage = irdl.base "#builtin.integer"
    irdl.attributes { "group" = %group, "stage" = %stage }
    irdl.operands(token: %tok)
  }
}
