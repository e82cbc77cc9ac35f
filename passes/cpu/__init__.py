"""llvm-cpu passes of the texflow-layout phase: attention, softmax and contractions in the forms
IREE's CPU code runs fastest (docs/cpu.md)."""
