"""Calibration and evaluation text: built-in code corpora and user files, cut into token windows."""
