"""Print the cost models' ratio table (Markdown) from python/texflow/selection/data/*.json.

    python benchmarks/selection/calibration_table.py
"""

import json
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "python/texflow/selection/data"
CASES = [("conv3x3", "conv 3×3 64→64", ["nchw", "nhwc", "nc4hw4"]),
         ("convstem", "stem 7×7/2 3→64", ["nchw", "nhwc"]),
         ("convpatch", "patch embedding 16×16/16 3→192", ["nchw", "nhwc"]),
         ("dwconv3x3", "depthwise 3×3, 144 ch", ["nchw", "nhwc", "nc4hw4"]),
         ("matmul", "matmul RHS K×N / N×K", ["kn", "nk"]),
         ("movement", "transpose / copy", ["transpose"])]


def main():
    cols = []
    for name in ("llvm-cpu", "vulkan-nvidia"):
        d = json.loads((DATA / f"{name}.json").read_text())
        for elem in ("f32", "f16"):
            cols.append((f"{name} {elem}", d["cases"][elem], f"{d['device']}, {d['date']}"))
    pub = json.loads((DATA / "published-mobile.json").read_text())
    print("| case (layouts) | " + " | ".join(c[0] for c in cols) + " | mobile (published) |")
    print("|---|" + "---|" * (len(cols) + 1))
    for case, label, lays in CASES:
        row = [f"{label} ({' / '.join(lays)})"]
        for _, cases, _ in cols:
            c = cases.get(case)
            row.append(" / ".join(f"{c[l]['ratio_to_best']:.2f}" if c and l in c else "–" for l in lays))
        p = pub["ratios"].get(case)
        row.append(" / ".join(f"{p[l]:.2f}" if p and l in p else "–" for l in lays))
        print("| " + " | ".join(row) + " |")
    print()
    for c in cols[::2]:
        print(f"- {c[0].split()[0]}: {c[2]}")


if __name__ == "__main__":
    main()
