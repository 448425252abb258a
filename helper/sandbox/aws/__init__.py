"""The sandbox's AWS: moto in server mode, extended with lifecycle-hook behaviour."""
