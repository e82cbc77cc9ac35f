"""texflow's measuring tools: benchmarks, calibration and profiling (an optional subpackage).

Nothing in the compiler, the runtime or the three CLIs imports this package
(test/pytest/test_import_structure.py checks it): it measures them.  `texflow-bench` compares
real model architectures under plain IREE, texflow and ONNX Runtime.

Modules:
- `models`   builds the models offline (random, perturbed weights), exports them to ONNX at
             fixed batch-1 shapes and caches model, reference inputs and ONNX Runtime outputs.
- `classify` counts dispatches and classifies the pure data-movement ones (flow-level IR).
- `harness`  compiles each variant and times them interleaved (A/B) in one process.
- `report`   writes Markdown, JSON and a PNG chart into a results folder.
- `gpu`      prepares modules here and runs them on the device tool's NVIDIA machine (Vulkan).
- `corpus`, `corpus_run`  the corpus of real architectures (compile, run, compare, per model).
- `calibrate_layout`      measures the layout cost model's data (texflow/selection/data/*.json).
- `calibrate_streaming`   measures the streaming runtime's calibration (load and chunk costs).
- `streaming_run`         times streamed modules against resident ones, warm and cold.
- `planner_bench`, `synthetic_plans`  the weight-load planner on synthetic problems.

Run it as `python -m texflow.bench --help` (or `texflow-bench`); `benchmarks/README.md` explains
the committed report.

Heavy dependencies (torch, transformers, diffusers, onnxruntime, matplotlib) come with the
`bench` extra and are imported lazily: `classify` and the harness core need only numpy.
"""
