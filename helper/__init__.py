"""aws-deploy-helper: which EC2 instances serve each site, and gated scale-up deploys."""

__version__ = "0.1.0"

# The one spelling of the program's name: its messages, logs, user agent, managed-block
# markers and the tags on what `hooks install` creates all say this.
PROG = "aws-deploy-helper"
