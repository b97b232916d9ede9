"""Experiments written the way Lightning's documentation writes them, one file each.

They import nothing from the template: each is what a user copies to bring their own
model and data (README, "Your own experiment").
"""
