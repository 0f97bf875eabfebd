"""r1cli: the DeepSeek-R1 training recipe as composable Unix commands.

Every `r1` command is a thin layer over a library function of this package, so each
stage can also be driven from Python.
"""

__version__ = "0.1.0"
