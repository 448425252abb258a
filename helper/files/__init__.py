"""The disk edge: which paths may be read or replaced, and writing them all or none."""
