"""The AWS edge: botocore clients for a site's account and region, and reading their errors."""
