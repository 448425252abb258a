"""The sandbox's real load balancer (HAProxy) and the small app its test hosts serve."""
