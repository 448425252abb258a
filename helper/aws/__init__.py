"""The AWS edge: botocore clients for a site's account and region, and reading their errors.

names.py and hook_timeouts.py hold AWS's rules as plain data and import no botocore, so the
settings and the command line can use them without loading the AWS SDK.
"""
