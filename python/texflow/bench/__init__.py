"""texflow-bench: real model architectures, plain IREE vs texflow vs ONNX Runtime.

Modules:
- `models`   builds the models offline (random, perturbed weights), exports them to ONNX at
             fixed batch-1 shapes and caches model, reference inputs and ONNX Runtime outputs.
- `classify` counts dispatches and classifies the pure data-movement ones (flow-level IR).
- `harness`  compiles each variant and times them interleaved (A/B) in one process.
- `report`   writes Markdown, JSON and a PNG chart into a results folder.
- `gpu`      prepares modules here and runs them on the device tool's NVIDIA machine (Vulkan).

Run it as `python -m texflow.bench --help` (or `texflow-bench`); `benchmarks/README.md` explains
the committed report.

Heavy dependencies (torch, transformers, diffusers, onnxruntime, matplotlib) come with the
`bench` extra and are imported lazily: `classify` and the harness core need only numpy.
"""
