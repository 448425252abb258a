"""aws-deploy-helper: which EC2 instances serve each site, and gated scale-up deploys."""

__version__ = "0.1.0"
