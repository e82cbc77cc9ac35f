"""texflow-eliminate-layout's rules, one file each (passes/layout/eliminate.py applies them).

Each rule is a pattern (texflow.ir.rewrite): `match` decides from the IR alone, `rewrite`
carries the plan out.  Each implements cells of SmartMem's pair table (texflow.ir.quadrants) and
is offered only the producer/consumer pairs the table sends there.  `common` holds what they
share.
"""
