"""The sandbox's Jenkins: a REST emulator of what python-jenkins and the consumer use."""
