"""Gated scale-up: receive -> parse -> route -> batch -> deploy -> complete -> delete."""
