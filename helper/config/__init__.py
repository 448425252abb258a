"""The configuration file: YAML with line numbers, field checks, sites, paths and the lifecycle section."""
