"""The texflow-layout phase's layout passes: raise, classify, eliminate (its rules in rules/, one file
each), select, lower and verify the `layout` dialect's transforms."""
