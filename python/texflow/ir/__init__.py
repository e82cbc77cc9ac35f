"""texflow's shared IR layer: what several passes need to read and build upstream IR.

`structured`: views of linalg ops (maps, iterators, inputs, outputs, bodies), builders for
generic, pack/unpack and reshapes.  `constants`: dense constants to and from numpy.  Pass
files import these, the dialects and the registry, never another pass file
(test/pytest/test_import_structure.py).
"""
