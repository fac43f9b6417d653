"""Package data: the board/ folder, shipped in the wheel as fiscal_data.board (setup.py, hostd/boards/shipped.py)."""
