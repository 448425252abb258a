"""The one family of errors a user sees.

Every failure a user can act on is a HelperError whose message is one line naming the
file, line, field or site at fault. The CLI (helper/cli.py) is the only place that
catches it; nothing else in the package catches Exception.
"""


class HelperError(Exception):
    """A failure with a message the user can act on."""


class ConfigError(HelperError):
    """The configuration file or a command-line value is wrong."""


class DiscoveryError(HelperError):
    """AWS could not tell which instances serve a site."""


class OutputError(HelperError):
    """An output file could not be read or written."""


# What the program exits with (helper/cli.py): a failure the user can act on, a wrong config
# or flag (as argparse does for a usage error), an interrupt (128 + SIGINT, as a shell reports it).
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
