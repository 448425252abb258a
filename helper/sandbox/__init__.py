"""Local stand-ins for AWS and Jenkins, for tests, demos and first-time users."""
