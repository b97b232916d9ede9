"""Digits written the way Lightning's own documentation writes a LightningModule and a DataModule."""
