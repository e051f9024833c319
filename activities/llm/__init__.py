"""Model providers behind one activity."""
