"""Package data: the samples/ folder, shipped in the wheel as fiscal_data.samples (setup.py, hostd/boards/shipped.py)."""
