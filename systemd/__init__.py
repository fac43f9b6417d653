"""Package data: the systemd/ folder, shipped in the wheel as fiscal_data.systemd (setup.py, hostd/boards/shipped.py)."""
