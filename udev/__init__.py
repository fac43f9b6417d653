"""Package data: the udev/ folder, shipped in the wheel as fiscal_data.udev (setup.py, hostd/boards/shipped.py)."""
