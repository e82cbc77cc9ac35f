"""How many examples each property test tries, per hypothesis profile.

Profiles (registered in conftest.py; picked by `TEXFLOW_HYPOTHESIS_PROFILE` or pytest's
`--hypothesis-profile`):

- `ci` (the default): derandomized, so every run tries the same examples and a failure found
  by CI reproduces on the next run; each test tries its own CI count, `examples(n)`.
- `long`: random examples, ten times each test's CI count and at least 300: a real search,
  e.g. `pytest --hypothesis-profile=long -m "not slow" test/pytest/test_layout.py`.

A test states its CI count through `examples(n)` rather than a bare `max_examples=n`, which
would override the profile: the long profile would then try no more than CI does.
"""

from hypothesis import settings

LONG_MIN = 300  # the long profile's max_examples
LONG_FACTOR = 10


def examples(n: int) -> int:
    """Examples for a test that tries `n` under the CI profile (read when the test module is
    imported, after pytest has loaded the profile)."""
    if settings.default.max_examples >= LONG_MIN:
        return max(n * LONG_FACTOR, LONG_MIN)
    return n
