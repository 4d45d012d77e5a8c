"""Design: the canvases, the baselines, the heuristics and the project configuration read from the ML Canvas."""
