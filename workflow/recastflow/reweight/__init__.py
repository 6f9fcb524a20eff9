"""Stage reweight: RECAST-style reweighting of selected events to another model point."""
