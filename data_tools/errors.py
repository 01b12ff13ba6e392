"""The one error class of data_tools: a message naming the file (or option) and what is wrong."""


class DataError(ValueError):
    """Bad input or a bad dataset file; the message names the file and the problem.

    The command line prints the message as one line and exits non-zero.
    """
