"""The shared block-by-block calibration engine every method runs on."""
