"""Inventory: config -> discover -> select -> name -> render -> write."""
