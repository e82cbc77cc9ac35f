import os
import sys

# Lavapipe (Mesa's CPU Vulkan) reads these when the Vulkan driver starts, so
# they must be set before any test creates a Vulkan device: subgroup size 16
# matches the Valhall target (the default 8 gives wrong reductions).
os.environ.setdefault("LP_NATIVE_VECTOR_WIDTH", "512")
os.environ.setdefault("MESA_SHADER_CACHE_DISABLE", "true")
# An optimisation pass that breaks the IR is undone in a user's compile (the compile goes on);
# in the tests it fails the compile, so a broken rewrite cannot hide behind correct outputs.
os.environ.setdefault("TEXFLOW_STRICT", "1")
sys.path.insert(0, os.path.dirname(__file__))

import pytest  # noqa: E402


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", help="run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: pass --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def _vulkan_available() -> bool:
    try:
        import iree.runtime as rt
        return bool(rt.get_driver("vulkan").query_available_devices())
    except Exception:
        return False


@pytest.fixture(scope="session")
def vulkan():
    """Vulkan must work where CI installs lavapipe; TEXFLOW_REQUIRE_VULKAN=1 makes its absence fail."""
    if not _vulkan_available():
        if os.environ.get("TEXFLOW_REQUIRE_VULKAN") == "1":
            pytest.fail("TEXFLOW_REQUIRE_VULKAN=1 but no Vulkan device (apt-get install mesa-vulkan-drivers)")
        pytest.skip("no Vulkan device: the Vulkan tests did NOT run (install Mesa's lavapipe, "
                    "`apt-get install mesa-vulkan-drivers`, or run scripts/test.sh; set "
                    "TEXFLOW_REQUIRE_VULKAN=1 to make a missing device fail instead of skip)")
    return True


from hypothesis import Phase, settings  # noqa: E402

# ci: derandomized (the same examples every run, so a CI failure reproduces), each test's
# own count; long: random, 10x each test's count (hypothesis_budget.examples).  The default
# count (10) is for property tests that compile models (each example compiles twice).
settings.register_profile("ci", max_examples=10, deadline=None, derandomize=True,
                          print_blob=True)
settings.register_profile("long", max_examples=300, deadline=None, derandomize=False)
# mutation (scripts/pytest_mutation.py): CI's examples, but a failure is not shrunk: a mutant is
# killed by the first failing example instead of minutes spent minimising it
settings.register_profile("mutation", max_examples=10, deadline=None, derandomize=True,
                          phases=[Phase.explicit, Phase.reuse, Phase.generate])
settings.load_profile(os.environ.get("TEXFLOW_HYPOTHESIS_PROFILE", "ci"))
