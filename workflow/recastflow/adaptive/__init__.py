"""Adaptive scans: events where a point's verdict is still open, points where the exclusion contour is."""
