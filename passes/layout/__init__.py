"""The texflow-layout phase's layout passes: raise, classify, eliminate (with its rule module
expand_fold), select, lower and verify the `layout` dialect's transforms."""
