"""argparse that reports errors as one line (TexflowError) instead of usage dumps."""

import argparse

from texflow.errors import TexflowError


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message):
        raise TexflowError(message)
