"""Risk: velocity windows, promotions, the order's fan-in, signals and the rules over them."""
