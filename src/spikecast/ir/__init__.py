"""The layer graph every frontend produces and every scheme consumes, and its normalization."""
