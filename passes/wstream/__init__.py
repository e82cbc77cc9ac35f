"""The weight-streaming passes (texflow-wstream and texflow-finalize phases): form stages, split
weights, plan loads under a budget, outline segments or lower, and check nothing texflow reaches IREE."""
