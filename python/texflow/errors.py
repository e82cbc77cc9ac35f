"""User-facing errors.

Every failure a user can cause (bad file, bad flag, bad IR) is raised as a
`TexflowError` whose message is one line; the CLI tools print it as
`<tool>: error: <message>` and exit non-zero.  Anything else is a bug.
"""


class TexflowError(Exception):
    """An error caused by the user's input, reported as one line."""

    def __init__(self, message: str):
        # Keep messages one line: IREE diagnostics can be multi-line.
        super().__init__(" ".join(str(message).split()))
