"""Stage emulate: the detector card, jet clustering and the card-driven ATLAS-like emulation."""
